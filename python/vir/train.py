"""Trains a ViR with DistributedDataParallel, launched by torchrun, with the ML.NET trainer's recipe: AdamW (no weight
decay on biases, norms and embeddings), linear warmup then cosine decay per step, label smoothing, gradient clipping.
Rank 0 writes a safetensors checkpoint that Microsoft.ML.Retention loads.

    torchrun --nproc_per_node=2 -m vir.train --data DIR --preset Mini --epochs 10 --out model.safetensors

gloo on CPU, nccl on GPUs (one process per GPU).
"""
import argparse
import json
import math
import os
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import load_checkpoint, save_checkpoint
from .config import PRESETS, ViRConfig
from .data import ImageFolder, evaluation_folder
from .model import ViR
from .vit import ViT


def arguments(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="ImageNet-style folder: <label>/<image> (or train/<label>/<image>).")
    p.add_argument("--arch", default="ViR", choices=["ViR", "ViT"], help="ViR, or a timm-layout ViT (to start a ViR from).")
    p.add_argument("--preset", default="Mini", choices=sorted(PRESETS), help="Architecture preset (ViRConfig.Presets in the library).")
    p.add_argument("--config", help="A ViRConfig as JSON; overrides --preset (NumClasses comes from the data).")
    p.add_argument("--image-size", type=int, help="Resolution (default: the preset's).")
    p.add_argument("--init", help="A safetensors checkpoint to start from (its head is replaced if the class count differs).")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--max-steps", type=int, help="Stop after this many optimizer steps (for a quick try).")
    p.add_argument("--batch-size", type=int, default=64, help="Images per step and process.")
    p.add_argument("--lr", type=float, default=1e-3, help="Peak learning rate.")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--clip", type=float, default=1.0, help="Gradient-norm clip; 0 turns it off.")
    p.add_argument("--max-images-per-class", type=int)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="vir.safetensors")
    return p.parse_args(argv)


def main(argv=None):
    args = arguments(argv)
    distributed = "WORLD_SIZE" in os.environ
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        # Processes share the cores: one thread each avoids oversubscription (torchrun sets OMP_NUM_THREADS=1 too).
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))

    config = ViRConfig.from_json(args.config) if args.config else PRESETS[args.preset]
    if args.image_size:
        config = config.replace(ImageHeight=args.image_size, ImageWidth=args.image_size)
    data = ImageFolder(args.data, config, args.max_images_per_class)
    config = config.replace(NumClasses=len(data.classes))

    torch.manual_seed(args.seed)  # the same initial weights in every process
    model = (ViR if args.arch == "ViR" else ViT)(config)
    if args.init:
        start, _ = load_checkpoint(args.init)
        state = {k: v for k, v in start.state_dict().items() if not (k.startswith("head.") and start.config.NumClasses != config.NumClasses)}
        model.load_state_dict(state, strict=False)
    model.to(device)
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if distributed else model

    sampler = torch.utils.data.distributed.DistributedSampler(data, world, rank, shuffle=True, seed=args.seed) if distributed else None
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch_size, sampler=sampler, shuffle=sampler is None, drop_last=False)
    no_decay = model.no_weight_decay()
    groups = [
        {"params": [p for n, p in model.named_parameters() if n not in no_decay], "weight_decay": args.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n in no_decay], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    steps_per_epoch = len(loader)
    total = args.epochs * steps_per_epoch
    warmup = round(args.warmup_epochs * steps_per_epoch)

    def learning_rate(step):
        if step < warmup:
            return args.lr * (step + 1) / warmup
        return 0.5 * args.lr * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    step, start_time = 0, time.time()
    for epoch in range(args.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        ddp.train()
        seen, loss_sum = 0, 0.0
        for images, labels in loader:
            if args.max_steps is not None and step >= args.max_steps:
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step)
            images, labels = images.to(device), labels.to(device)
            loss = torch.nn.functional.cross_entropy(ddp(images), labels, label_smoothing=args.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            if args.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            step += 1
            seen += len(labels)
            loss_sum += loss.item() * len(labels)
        if rank == 0:
            print(json.dumps({"epoch": epoch + 1, "step": step, "loss": loss_sum / max(1, seen), "images_per_second_per_process": seen / max(1e-9, time.time() - start_time)}), flush=True)
        start_time = time.time()
        if args.max_steps is not None and step >= args.max_steps:
            break

    if rank == 0:
        model.eval()
        save_checkpoint(model, args.out, data.classes)
        held_out = evaluation_folder(args.data)
        if held_out is not None:
            evaluation = ImageFolder(held_out, config, args.max_images_per_class)
            evaluation.index = data.index  # the training classes, in the head's order
            correct = 0
            with torch.no_grad():
                for images, labels in torch.utils.data.DataLoader(evaluation, batch_size=args.batch_size):
                    correct += (model(images.to(device)).argmax(1).cpu() == labels).sum().item()
            print(json.dumps({"evaluated": held_out, "images": len(evaluation), "accuracy": correct / len(evaluation)}), flush=True)
        print(f"wrote {args.out} ({step} steps, {world} processes, classes {data.classes})", flush=True)
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
