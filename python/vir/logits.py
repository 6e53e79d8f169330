"""Scores images with a checkpoint in every retention form and writes the inputs and logits as safetensors, so that
another implementation (the library's tests) can compare:

    python3 -m vir.logits --model vir.safetensors --images a.png b.png --out logits.safetensors
    python3 -m vir.logits --model vir.safetensors --inputs inputs.safetensors --out logits.safetensors
"""
import argparse

import torch

from . import safetensors
from .checkpoint import load_checkpoint
from .data import load_image


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--images", nargs="*", default=[], help="Image files, preprocessed as the library does.")
    p.add_argument("--inputs", help="A safetensors file with an 'images' tensor [B, C, H, W] to score as is.")
    p.add_argument("--chunk-size", type=int, default=0, help="Chunkwise chunk size; 0: automatic.")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    model, labels = load_checkpoint(args.model)
    images = safetensors.load(args.inputs)[0]["images"] if args.inputs else torch.stack([load_image(f, model.config) for f in args.images])
    out = {"images": images}
    with torch.no_grad():
        for mode in ("Parallel", "Chunkwise", "Recurrent"):
            out[f"logits.{mode}"] = model(images, mode, args.chunk_size)
    safetensors.save(out, args.out, {"labels": ",".join(labels or [])})


if __name__ == "__main__":
    main()
