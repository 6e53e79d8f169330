"""A reference ViT in timm's layout (the [class] token first, with a row of its own in pos_embed, softmax attention),
with the same blocks as the ViR otherwise. Its checkpoints are what ViRCheckpoint.LoadVisionTransformer starts a ViR from."""
import torch
from torch import nn

from .config import ViRConfig
from .model import Block, PatchEmbed


class SoftmaxAttention(nn.Module):
    def __init__(self, config: ViRConfig):
        super().__init__()
        self.heads = config.Heads
        self.qkv = nn.Linear(config.Dim, 3 * config.Dim)
        self.proj = nn.Linear(config.Dim, config.Dim)

    def forward(self, x, mode: str = "Parallel", chunk_size: int = 0):
        b, n, dim = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attention = (q @ k.transpose(-1, -2) * (dim // self.heads) ** -0.5).softmax(-1)
        return self.proj((attention @ v).transpose(1, 2).reshape(b, n, dim))


class ViT(nn.Module):
    def __init__(self, config: ViRConfig):
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.Dim))
        self.pos_embed = nn.Parameter(torch.randn(1, config.patch_count + 1, config.Dim) * 0.02)
        self.blocks = nn.ModuleList([Block(config, config.DropPath * i / max(1, config.Depth - 1), SoftmaxAttention) for i in range(config.Depth)])
        self.norm = nn.LayerNorm(config.Dim, eps=1e-6)
        self.head = nn.Linear(config.Dim, config.NumClasses) if config.NumClasses > 0 else nn.Identity()

    def no_weight_decay(self):
        return {n for n, p in self.named_parameters() if p.dim() <= 1 or n in ("pos_embed", "cls_token")}

    def forward(self, images, mode: str = "Parallel", chunk_size: int = 0):
        x = torch.cat([self.cls_token.expand(images.shape[0], -1, -1), self.patch_embed(images)], 1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])
