"""Retention in its three exact forms, as the library computes it.

q, k and v are [B, H, N, D]; gamma is [H] with values in (0, 1]. Every form scales q by 1/sqrt(D) first, so
parallel(q, k, v, gamma) = ((q/sqrt(D)) k^T * D_gamma) v, with D_gamma[n, m] = gamma^(n-m) for n >= m and 0 above.
"""
import math

import torch


def decays(schedule: str, heads: int) -> torch.Tensor:
    """The per-head decay gamma of a schedule ("RetNet" or "LogSpaced"), as float32 [heads]."""
    if schedule == "RetNet":
        values = [1 - 2.0 ** (-5 - h) for h in range(heads)]
    elif schedule == "LogSpaced":
        lo, hi = math.log(1 / 32), math.log(1 / 512)
        values = [1 - math.exp(lo + (0 if heads == 1 else h / (heads - 1)) * (hi - lo)) for h in range(heads)]
    else:
        raise ValueError(f"DecaySchedule must be RetNet or LogSpaced, but it is {schedule!r}.")
    return torch.tensor(values, dtype=torch.float32)


def _log_gamma(gamma: torch.Tensor) -> torch.Tensor:
    return gamma.double().log()


def _causal_mask(gamma: torch.Tensor, n: int, scale: float) -> torch.Tensor:
    """[H, n, n]: scale * gamma^(i-j) where i >= j, else 0."""
    distance = (torch.arange(n, dtype=torch.float64)[:, None] - torch.arange(n, dtype=torch.float64)[None, :]).clamp_min(0)
    return ((_log_gamma(gamma)[:, None, None] * distance).exp().tril() * scale).float()


def parallel(q, k, v, gamma):
    scale = q.shape[-1] ** -0.5
    mask = _causal_mask(gamma, q.shape[2], scale).to(q.device, q.dtype)
    return (q @ k.transpose(-1, -2) * mask) @ v


def chunkwise(q, k, v, gamma, chunk_size: int):
    """Parallel inside chunks of chunk_size tokens, recurrent across them."""
    b, h, n, d = q.shape
    c = min(chunk_size, n)
    chunks = -(-n // c)
    pad = chunks * c - n
    scale = d ** -0.5
    log_gamma = _log_gamma(gamma)

    def chunked(x):
        return torch.nn.functional.pad(x, (0, 0, 0, pad)).view(b, h, chunks, c, d)

    qc, kc, vc = chunked(q), chunked(k), chunked(v)
    position = torch.arange(c, dtype=torch.float64)
    key_decay = (log_gamma[:, None] * (c - 1 - position)[None, :]).exp().float().to(q.device)[:, None, :, None]  # gamma^(C-1-j)
    query_decay = ((log_gamma[:, None] * (position + 1)[None, :]).exp() * scale).float().to(q.device)[:, None, :, None]
    chunk_decay = (log_gamma * c).exp().float().to(q.device)[None, :, None, None]

    out = (qc @ kc.transpose(-1, -2) * _causal_mask(gamma, c, scale).to(q.device)[:, None]) @ vc
    chunk_states = (kc * key_decay).transpose(-1, -2) @ vc  # [B, H, nC, D, D]
    state = torch.zeros(b, h, d, d, dtype=q.dtype, device=q.device)
    cross = []
    for i in range(chunks):
        cross.append(qc[:, :, i] @ state * query_decay[:, 0])
        state = state * chunk_decay + chunk_states[:, :, i]
    out = out + torch.stack(cross, 2)
    return out.reshape(b, h, chunks * c, d)[:, :, :n]


def recurrent(q, k, v, gamma):
    """One token at a time through a [B, H, D, D] state: S = gamma S + k^T v, o = (q/sqrt(D)) S."""
    b, h, n, d = q.shape
    g = gamma.to(q.device, q.dtype)[None, :, None, None]
    state = torch.zeros(b, h, d, d, dtype=q.dtype, device=q.device)
    outputs = []
    for t in range(n):
        state = g * state + k[:, :, t, :, None] * v[:, :, t, None, :]
        outputs.append((q[:, :, t, None, :] * d ** -0.5) @ state)
    return torch.cat(outputs, 2)


FORMS = {"Parallel": parallel, "Chunkwise": chunkwise, "Recurrent": recurrent}
