#!/usr/bin/env bash
# Gets the full Fashion-MNIST data set (60,000 training and 10,000 test images, MIT licence) from the
# Debian package dataset-fashion-mnist, without root (apt-get download + dpkg -x), and converts it into
# ImageNet-style folders: <out>/train/<class>/<n>.png and <out>/test/<class>/<n>.png.
#   ./build/get-fashion-mnist.sh [out]        (default out: data/fashion-mnist-full)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-data/fashion-mnist-full}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! (cd "$work" && apt-get download dataset-fashion-mnist); then
  echo "apt-get could not download dataset-fashion-mnist: refresh the package lists once with 'sudo apt-get update' and run this again." >&2
  exit 1
fi
dpkg -x "$work"/dataset-fashion-mnist_*.deb "$work/package"
rm -rf "$out"
dotnet run --project build/FashionMnistExport -c Release -- "$work/package/usr/share/datasets/fashion-mnist" "$out"
cp samples/ViRImageClassification/data/fashion-mnist/LICENSE "$out/LICENSE"
echo "Fashion-MNIST is in $out"
