"""The ViR model, module for module the library's ViRModel, with timm's VisionTransformer state-dict names.

Names: patch_embed.proj (patchify convolution, or the convolutional stem's closing projection),
patch_embed.stem.{j}.conv / .bn (the convolutional stem), pos_embed (patches only), cls_token, blocks.{i}.norm1,
blocks.{i}.attn.qkv, blocks.{i}.attn.proj, blocks.{i}.attn.decay (the per-head gamma, fixed by the config),
blocks.{i}.ls1.gamma, blocks.{i}.norm2, blocks.{i}.mlp.fc1, blocks.{i}.mlp.fc2, blocks.{i}.ls2.gamma, norm, head.
"""
import torch
from torch import nn

from .config import ViRConfig
from .retention import FORMS, decays


def auto_chunk_size(tokens: int) -> int:
    """ChunkSizes.Auto: one chunk up to 256 tokens, 64-token chunks beyond."""
    return tokens if tokens <= 256 else 64


class ConvStage(nn.Module):
    """A bias-free 3x3 stride-2 convolution, BatchNorm and ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class PatchEmbed(nn.Module):
    def __init__(self, config: ViRConfig):
        super().__init__()
        if config.Stem == "Convolutional":
            stages = config.PatchSize.bit_length() - 1
            widths = [max(8, config.Dim >> (stages - 1 - i)) for i in range(stages)]
            self.stem = nn.Sequential(*[ConvStage(cin, cout) for cin, cout in zip([config.Channels] + widths[:-1], widths)])
            self.proj = nn.Linear(widths[-1], config.Dim)
        elif config.Stem == "Patchify":
            self.stem = None
            self.proj = nn.Conv2d(config.Channels, config.Dim, config.PatchSize, stride=config.PatchSize)
        else:
            raise ValueError(f"Stem must be Patchify or Convolutional, but it is {config.Stem!r}.")

    def forward(self, images):
        if self.stem is None:
            return self.proj(images).flatten(2).transpose(1, 2)
        return self.proj(self.stem(images).flatten(2).transpose(1, 2))


class Retention(nn.Module):
    """Multi-scale retention: fused qkv, retention in the asked form, output projection (no gate, no GroupNorm)."""

    def __init__(self, config: ViRConfig):
        super().__init__()
        self.heads = config.Heads
        self.qkv = nn.Linear(config.Dim, 3 * config.Dim)
        self.proj = nn.Linear(config.Dim, config.Dim)
        self.register_buffer("decay", decays(config.DecaySchedule, config.Heads))

    def forward(self, x, mode: str = "Parallel", chunk_size: int = 0):
        b, n, dim = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        if mode == "Chunkwise":
            y = FORMS[mode](q, k, v, self.decay, chunk_size or auto_chunk_size(n))
        else:
            y = FORMS[mode](q, k, v, self.decay)
        return self.proj(y.transpose(1, 2).reshape(b, n, dim))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x):
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(nn.functional.gelu(self.fc1(x)))))


def drop_path(x, rate: float, training: bool):
    if not training or rate <= 0:
        return x
    keep = 1 - rate
    return x * torch.bernoulli(torch.full((x.shape[0],) + (1,) * (x.dim() - 1), keep, dtype=x.dtype, device=x.device)) / keep


class Block(nn.Module):
    """Pre-LN: x + drop_path(ls1(attn(norm1(x)))), then x + drop_path(ls2(mlp(norm2(x))))."""

    def __init__(self, config: ViRConfig, drop_path_rate: float, mixer=None):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.Dim, eps=1e-6)
        self.attn = (mixer or Retention)(config)
        self.ls1 = LayerScale(config.Dim, config.LayerScaleInit) if config.LayerScaleInit > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(config.Dim, eps=1e-6)
        self.mlp = Mlp(config.Dim, int(config.Dim * config.MlpRatio), config.Dropout)
        self.ls2 = LayerScale(config.Dim, config.LayerScaleInit) if config.LayerScaleInit > 0 else nn.Identity()
        self.drop_path_rate = drop_path_rate

    def forward(self, x, mode: str = "Parallel", chunk_size: int = 0):
        x = x + drop_path(self.ls1(self.attn(self.norm1(x), mode, chunk_size)), self.drop_path_rate, self.training)
        return x + drop_path(self.ls2(self.mlp(self.norm2(x))), self.drop_path_rate, self.training)


class ViR(nn.Module):
    """A Vision Retention Network: a ViT whose attention is retention, with the [class] token appended last."""

    def __init__(self, config: ViRConfig):
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config)
        self.pos_embed = nn.Parameter(torch.randn(1, config.patch_count, config.Dim) * 0.02)
        self.cls_token = nn.Parameter(torch.randn(1, 1, config.Dim) * 1e-6)
        self.pos_drop = nn.Dropout(config.Dropout)
        self.blocks = nn.ModuleList(
            [Block(config, config.DropPath * i / max(1, config.Depth - 1)) for i in range(config.Depth)])
        self.norm = nn.LayerNorm(config.Dim, eps=1e-6)
        self.head = nn.Linear(config.Dim, config.NumClasses) if config.NumClasses > 0 else nn.Identity()
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear) and not name.startswith("patch_embed"):
                nn.init.normal_(module.weight, 0, 0.02)
                nn.init.zeros_(module.bias)

    def no_weight_decay(self):
        """Biases, norms, LayerScale, decays, and the position and class embeddings (as in timm and DeiT)."""
        return {n for n, p in self.named_parameters() if p.dim() <= 1 or n in ("pos_embed", "cls_token")}

    def position_embedding(self, grid_h: int, grid_w: int):
        c = self.config
        h, w = c.ImageHeight // c.PatchSize, c.ImageWidth // c.PatchSize
        if (grid_h, grid_w) == (h, w):
            return self.pos_embed
        grid = self.pos_embed.view(1, h, w, c.Dim).permute(0, 3, 1, 2)
        resized = nn.functional.interpolate(grid, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        return resized.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, c.Dim)

    def embed(self, images, mode: str = "Parallel", chunk_size: int = 0):
        p = self.config.PatchSize
        x = self.patch_embed(images) + self.position_embedding(images.shape[2] // p, images.shape[3] // p)
        x = self.pos_drop(torch.cat([x, self.cls_token.expand(images.shape[0], -1, -1)], 1))
        for block in self.blocks:
            x = block(x, mode, chunk_size)
        return self.norm(x)[:, -1]

    def forward(self, images, mode: str = "Parallel", chunk_size: int = 0):
        """Class logits [B, NumClasses] for images [B, C, H, W] scaled to [-1, 1]."""
        return self.head(self.embed(images, mode, chunk_size))
