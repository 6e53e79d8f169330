#!/usr/bin/env bash
# The one test command (README.md): restores, builds (the build patches the platform by itself)
# and runs every test from a clean clone. Prints "N passed, N failed" last; non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

configuration="${CONFIGURATION:-Release}"
results="artifacts/test-results"
rm -rf "$results"

# The PyTorch twin's tests need Debian's python3-torch (docs/scale-out.md).
./build/get-python-torch.sh

dotnet build Retention.MLNet.sln -c "$configuration" -nologo -v minimal
set +e
dotnet test Retention.MLNet.sln -c "$configuration" --no-build -nologo \
  --logger "trx;LogFilePrefix=results" --logger "console;verbosity=normal" --results-directory "$results" "$@"
status=$?
# The bfloat16 tests again with bfloat16 turned off, so a CPU that has it also tests the float32 fallback
# (on a CPU without it, both runs test the fallback).
MLRETENTION_DISABLE_BFLOAT16=1 dotnet test test/Microsoft.ML.Retention.Tests -c "$configuration" --no-build -nologo \
  --filter "TestCategory=BFloat16" --logger "trx;LogFilePrefix=results-no-bfloat16" --logger "console;verbosity=minimal" \
  --results-directory "$results"
fallback_status=$?
set -e

passed=0; failed=0
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx")
  passed=$((passed + $(sed -E 's/.* passed="([0-9]+)".*/\1/' <<<"$counters")))
  failed=$((failed + $(sed -E 's/.* failed="([0-9]+)".*/\1/' <<<"$counters")))
done
echo "$passed passed, $failed failed"
if [ "$status" -ne 0 ] || [ "$fallback_status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then exit 1; fi
