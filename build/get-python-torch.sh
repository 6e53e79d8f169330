#!/usr/bin/env bash
# Debian's PyTorch 1.13 (with torchrun and gloo) and Pillow, for the PyTorch twin's tests (python/vir).
# Does nothing when /usr/bin/python3 already imports both.
set -euo pipefail
if /usr/bin/python3 -c "import torch, PIL" 2>/dev/null; then exit 0; fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
start=$(date +%s)
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-torch python3-pil > /dev/null
echo "Installed python3-torch and python3-pil in $(( $(date +%s) - start )) s."
