#!/usr/bin/env bash
# Publishes the app that scores with TorchSharp (samples/ViRImageClassification.Consume) and the one that scores the
# exported ONNX model (samples/ViRImageClassification.Onnx), for linux-x64, and prints their sizes side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-artifacts/publish}"
rm -rf "$out"
dotnet publish samples/ViRImageClassification.Consume -c Release -o "$out/torchsharp" -nologo -v quiet
dotnet publish samples/ViRImageClassification.Onnx -c Release -o "$out/onnx" -nologo -v quiet
size() { du -sb "$1" | awk '{ printf "%.0f MiB", $1 / 1048576 }'; }
echo "TorchSharp app (samples/ViRImageClassification.Consume): $(size "$out/torchsharp")"
echo "ONNX app (samples/ViRImageClassification.Onnx):          $(size "$out/onnx")"
