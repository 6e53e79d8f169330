"""RMT (Fan et al., CVPR 2024) as the library builds it (Models/RmtModel.cs), with the same module names, which are the
official model's state_dict names. Used to check the C# model against PyTorch both ways through safetensors:

    python3 -m vir.rmt --model rmt.safetensors --inputs inputs.safetensors --out logits.safetensors
    python3 -m vir.rmt --config '{...RmtConfig JSON...}' --seed 1 --save rmt.safetensors --inputs inputs.safetensors --out logits.safetensors
"""
import argparse
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import safetensors

FORMAT = "rmt-safetensors-1"


class DepthwiseConv(nn.Module):
    """A depthwise convolution on [B, h, w, C]."""

    def __init__(self, dim, kernel):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel, 1, kernel // 2, groups=dim)

    def forward(self, x):
        return self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class RelPos(nn.Module):
    """ln γ_h = ln(1 − 2^−(a + r·h/N)) and the rotation frequencies, as buffers."""

    def __init__(self, dim, heads, initial_value, heads_range):
        super().__init__()
        half = dim // heads // 2
        frequencies = 1.0 / 10000 ** torch.linspace(0, 1, half)
        self.register_buffer("angle", frequencies.repeat_interleave(2))
        self.register_buffer("decay", torch.log(1 - 2 ** (-initial_value - heads_range * torch.arange(heads, dtype=torch.float) / heads)))

    def rotation(self, h, w):
        phase = torch.arange(h * w, dtype=torch.float)[:, None] * self.angle[None, :]
        return phase.sin().view(h, w, -1), phase.cos().view(h, w, -1)

    def mask_1d(self, n):
        i = torch.arange(n, dtype=torch.float)
        return (i[:, None] - i[None, :]).abs()[None] * self.decay[:, None, None]

    def mask_2d(self, h, w):
        rows = torch.arange(h, dtype=torch.float).repeat_interleave(w)
        cols = torch.arange(w, dtype=torch.float).repeat(h)
        distance = (rows[:, None] - rows[None, :]).abs() + (cols[:, None] - cols[None, :]).abs()
        return distance[None] * self.decay[:, None, None]


def rotate(x, sin, cos):
    """Turns interleaved pairs (x0, x1) to (x0·cos − x1·sin, x1·cos + x0·sin)."""
    turned = torch.stack([-x[..., 1::2], x[..., 0::2]], dim=-1).flatten(-2)
    return x * cos + turned * sin


class Attention(nn.Module):
    def __init__(self, dim, heads, decomposed):
        super().__init__()
        self.heads, self.decomposed = heads, decomposed
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.lepe = DepthwiseConv(dim, 5)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x, relpos):
        b, h, w, c = x.shape
        d = c // self.heads
        v = self.v_proj(x)
        local = self.lepe(v)
        split = lambda t: t.view(b, h, w, self.heads, -1).permute(0, 3, 1, 2, 4)  # [B, H, h, w, d]
        sin, cos = relpos.rotation(h, w)
        q = rotate(split(self.q_proj(x)), sin, cos)
        k = rotate(split(self.k_proj(x) * d ** -0.5), sin, cos)
        v = split(v)
        if self.decomposed:
            rows = torch.softmax(q.transpose(1, 2) @ k.transpose(1, 2).transpose(-1, -2) + relpos.mask_1d(w), -1) @ v.transpose(1, 2)
            qh, kh = q.permute(0, 3, 1, 2, 4), k.permute(0, 3, 1, 2, 4)
            out = torch.softmax(qh @ kh.transpose(-1, -2) + relpos.mask_1d(h), -1) @ rows.permute(0, 3, 2, 1, 4)
            out = out.permute(0, 2, 3, 1, 4).flatten(2, 3)
        else:
            qf, kf, vf = q.flatten(2, 3), k.flatten(2, 3), v.flatten(2, 3)
            out = torch.softmax(qf @ kf.transpose(-1, -2) + relpos.mask_2d(h, w), -1) @ vf
        return self.out_proj(out.transpose(1, 2).reshape(b, h, w, c) + local)


class FeedForward(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.dwconv = DepthwiseConv(hidden, 3)

    def forward(self, x):
        h = F.gelu(self.fc1(x))
        return self.fc2(h + self.dwconv(h))


class Block(nn.Module):
    def __init__(self, stage, layer_scale_init):
        super().__init__()
        dim = stage["Dim"]
        self.retention_layer_norm = nn.LayerNorm(dim, eps=1e-6)
        self.retention = Attention(dim, stage["Heads"], stage["Decomposed"])
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)
        self.ffn = FeedForward(dim, int(stage["MlpRatio"] * dim))
        self.pos = DepthwiseConv(dim, 3)
        self.layer_scale = stage.get("LayerScale", False)
        if self.layer_scale:
            self.gamma_1 = nn.Parameter(torch.full((1, 1, 1, dim), layer_scale_init))
            self.gamma_2 = nn.Parameter(torch.full((1, 1, 1, dim), layer_scale_init))

    def forward(self, x, relpos):  # eval: drop path is the identity
        x = x + self.pos(x)
        mixed = self.retention(self.retention_layer_norm(x), relpos)
        x = x + (self.gamma_1 * mixed if self.layer_scale else mixed)
        fed = self.ffn(self.final_layer_norm(x))
        return x + (self.gamma_2 * fed if self.layer_scale else fed)


class Merge(nn.Module):
    def __init__(self, dim, out_dim):
        super().__init__()
        self.reduction = nn.Conv2d(dim, out_dim, 3, 2, 1)
        self.norm = nn.BatchNorm2d(out_dim)

    def forward(self, x):
        return self.norm(self.reduction(x.permute(0, 3, 1, 2).contiguous())).permute(0, 2, 3, 1)


class Layer(nn.Module):
    def __init__(self, stage, next_dim, initial_value, layer_scale_init):
        super().__init__()
        self.Relpos = RelPos(stage["Dim"], stage["Heads"], initial_value, stage["HeadsRange"])
        self.blocks = nn.ModuleList([Block(stage, layer_scale_init) for _ in range(stage["Depth"])])
        self.downsample = Merge(stage["Dim"], next_dim) if next_dim else None

    def forward(self, x):
        for block in self.blocks:
            x = block(x, self.Relpos)
        return self.downsample(x) if self.downsample is not None else x


class Stem(nn.Module):
    def __init__(self, channels, dim):
        super().__init__()
        half = dim // 2
        self.proj = nn.Sequential(
            nn.Conv2d(channels, half, 3, 2, 1), nn.BatchNorm2d(half), nn.GELU(),
            nn.Conv2d(half, half, 3, 1, 1), nn.BatchNorm2d(half), nn.GELU(),
            nn.Conv2d(half, dim, 3, 2, 1), nn.BatchNorm2d(dim), nn.GELU(),
            nn.Conv2d(dim, dim, 3, 1, 1), nn.BatchNorm2d(dim))

    def forward(self, images):
        return self.proj(images).permute(0, 2, 3, 1)


class Rmt(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        self.config = config
        stages = config["Stages"]
        self.patch_embed = Stem(config["Channels"], stages[0]["Dim"])
        self.layers = nn.ModuleList([
            Layer(s, stages[i + 1]["Dim"] if i + 1 < len(stages) else None, config["InitialValue"], config["LayerScaleInit"])
            for i, s in enumerate(stages)])
        self.proj = nn.Linear(stages[-1]["Dim"], config["Projection"])
        self.norm = nn.BatchNorm2d(config["Projection"])
        self.head = nn.Linear(config["Projection"], config["NumClasses"]) if config["NumClasses"] > 0 else nn.Identity()

    def forward(self, images):
        x = self.patch_embed(images)
        for layer in self.layers:
            x = layer(x)
        x = self.norm(self.proj(x).permute(0, 3, 1, 2)).flatten(2, 3)
        return self.head(F.silu(x).mean(-1))


def save(model: Rmt, path: str):
    safetensors.save(model.state_dict(), path, {"format": FORMAT, "config": json.dumps(model.config)})


def load(path: str) -> Rmt:
    tensors, metadata = safetensors.load(path)
    model = Rmt(json.loads(metadata["config"]))
    model.load_state_dict(tensors, strict=True)
    return model.eval()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="A checkpoint written by the library or by --save.")
    p.add_argument("--config", help="RmtConfig JSON: build a model with random weights and BatchNorm statistics instead.")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--save", help="Where to write the model built from --config.")
    p.add_argument("--inputs", required=True, help="A safetensors file of input tensors [B, C, H, W].")
    p.add_argument("--out", required=True, help="Writes logits.<name> for every input <name>.")
    args = p.parse_args(argv)
    if args.config:
        torch.manual_seed(args.seed)
        model = Rmt(json.loads(args.config))
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                if name.endswith("running_mean"):
                    buffer.copy_(torch.randn(buffer.shape) * 0.1)
                elif name.endswith("running_var"):
                    buffer.copy_(torch.rand(buffer.shape) + 0.5)
            for name, parameter in model.named_parameters():
                if "gamma_" in name:
                    parameter.copy_(torch.randn(parameter.shape) * 0.3)
        model.eval()
        if args.save:
            save(model, args.save)
    else:
        model = load(args.model)
    inputs = safetensors.load(args.inputs)[0]
    with torch.no_grad():
        safetensors.save({f"logits.{name}": model(x) for name, x in inputs.items()}, args.out)


if __name__ == "__main__":
    main()
