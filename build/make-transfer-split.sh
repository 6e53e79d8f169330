#!/usr/bin/env bash
# Splits the full Fashion-MNIST (from ./build/get-fashion-mnist.sh) by class for the transfer-learning measurement
# in docs/training.md, with symbolic links (no copies):
#   <out>/pretrain: the first five classes in name order, all 6,000 training and 1,000 test images each;
#   <out>/few:      the other five, the first 50 training images of each (in name order) and all 1,000 test images.
#   ./build/make-transfer-split.sh [full] [out]   (defaults: data/fashion-mnist-full, data/fashion-mnist-transfer)
set -euo pipefail
cd "$(dirname "$0")/.."
full="$(realpath "${1:-data/fashion-mnist-full}")"
out="${2:-data/fashion-mnist-transfer}"
[ -d "$full/train" ] || { echo "No $full/train: run ./build/get-fashion-mnist.sh first." >&2; exit 1; }
rm -rf "$out"
mapfile -t classes < <(ls "$full/train" | LC_ALL=C sort)
[ "${#classes[@]}" -eq 10 ] || { echo "Expected 10 classes in $full/train, found ${#classes[@]}." >&2; exit 1; }
mkdir -p "$out/pretrain/train" "$out/pretrain/test" "$out/few/test"
for c in "${classes[@]:0:5}"; do
  ln -s "$full/train/$c" "$out/pretrain/train/$c"
  ln -s "$full/test/$c" "$out/pretrain/test/$c"
done
for c in "${classes[@]:5:5}"; do
  mkdir -p "$out/few/train/$c"
  mapfile -t images < <(cd "$full/train/$c" && ls -- *.png | LC_ALL=C sort)
  for f in "${images[@]:0:50}"; do ln -s "$full/train/$c/$f" "$out/few/train/$c/$f"; done
  ln -s "$full/test/$c" "$out/few/test/$c"
done
echo "pretrain: ${classes[*]:0:5}; few (50 per class): ${classes[*]:5:5}; in $out"
