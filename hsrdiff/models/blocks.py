"""Building blocks of CDFormer (METHOD.md §4). Tensors are (batch, channels, height, width).

- :class:`WindowAttention`: Swin multi-head self-attention inside non-overlapping windows, with a
  relative position bias and optional half-window shift (masks cached per input size).
- :class:`WindowCrossAttention`: the same windows, queries from one map, keys/values from another.
- :class:`SpectralAttention`: Restormer's transposed attention (a C x C map per head, learned
  temperature, depth-wise conv on q/k/v).
- :class:`GatedFFN`: Restormer's gated depth-wise feed-forward network.
- :class:`NoiseLevelEmbedding`: sinusoidal encoding of sqrt(gamma) (WaveGrad) and an MLP.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over channels at every pixel."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, C, H, W) -> (B * nW, window*window, C); H and W multiples of ``window``."""
    return rearrange(x, "b c (nh wh) (nw ww) -> (b nh nw) (wh ww) c", wh=window, ww=window)


def window_merge(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`."""
    return rearrange(windows, "(b nh nw) (wh ww) c -> b c (nh wh) (nw ww)", nh=height // window, nw=width // window, wh=window)


class _WindowBase(nn.Module):
    """Relative position bias and the shifted-window mask, shared by self- and cross-attention."""

    def __init__(self, channels: int, heads: int, window: int, shift: bool):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads, self.window = heads, window
        self.shift = window // 2 if shift else 0
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("bias_index", rel[..., 0] * (2 * window - 1) + rel[..., 1], persistent=False)
        self._mask_cache: dict[tuple, torch.Tensor] = {}

    def _bias(self) -> torch.Tensor:
        n = self.window * self.window
        return self.bias_table[self.bias_index.reshape(-1)].reshape(n, n, self.heads).permute(2, 0, 1)

    def _shift_mask(self, height: int, width: int, device, dtype) -> torch.Tensor | None:
        """(nW, N, N) additive mask that stops attention across the wrapped-around borders."""
        if not self.shift:
            return None
        key = (height, width, device, dtype)
        if key not in self._mask_cache:
            w, s = self.window, self.shift
            labels = torch.zeros(1, 1, height, width, device=device)
            region = 0
            for hs in (slice(0, -w), slice(-w, -s), slice(-s, None)):
                for ws in (slice(0, -w), slice(-w, -s), slice(-s, None)):
                    labels[..., hs, ws] = region
                    region += 1
            lw = window_partition(labels, w).squeeze(-1)  # (nW, N)
            mask = (lw[:, :, None] != lw[:, None, :]).to(dtype) * torch.finfo(dtype).min
            self._mask_cache[key] = mask
        return self._mask_cache[key]

    def _attend(self, q, k, v, height: int, width: int, batch: int) -> torch.Tensor:
        """q, k, v: (B*nW, N, C) -> (B*nW, N, C) with the position bias (and shift mask)."""
        q, k, v = (rearrange(t, "bw n (h d) -> bw h n d", h=self.heads) for t in (q, k, v))
        bias = self._bias().to(q.dtype)  # (heads, N, N)
        mask = self._shift_mask(height, width, q.device, q.dtype)
        if mask is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None])
            return rearrange(out, "bw h n d -> bw n (h d)")
        # Windows and heads share one axis so that the (window, head) mask broadcasts over the
        # batch instead of being copied for every image.
        n_windows = mask.shape[0]
        q, k, v = (rearrange(t, "(b w) h n d -> b (w h) n d", b=batch) for t in (q, k, v))
        attn_mask = (mask[:, None] + bias[None]).flatten(0, 1)[None]  # (1, nW*heads, N, N)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return rearrange(out, "b (w h) n d -> (b w) n (h d)", w=n_windows)

    def _roll(self, x: torch.Tensor, back: bool = False) -> torch.Tensor:
        if not self.shift:
            return x
        s = self.shift if back else -self.shift
        return torch.roll(x, shifts=(s, s), dims=(2, 3))


class WindowAttention(_WindowBase):
    """Multi-head self-attention in (shifted) windows. H and W must be multiples of the window."""

    def __init__(self, channels: int, heads: int, window: int = 8, shift: bool = False):
        super().__init__(channels, heads, window, shift)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        windows = window_partition(self._roll(x), self.window)
        q, k, v = self.qkv(windows).chunk(3, dim=-1)
        out = self.proj(self._attend(q, k, v, h, w, b))
        return self._roll(window_merge(out, self.window, h, w), back=True)


class WindowCrossAttention(_WindowBase):
    """Queries from ``x``, keys and values from ``context`` (same size), inside windows."""

    def __init__(self, channels: int, heads: int, window: int = 8, shift: bool = False):
        super().__init__(channels, heads, window, shift)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(channels, 2 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q = self.q(window_partition(self._roll(x), self.window))
        k, v = self.kv(window_partition(self._roll(context), self.window)).chunk(2, dim=-1)
        out = self.proj(self._attend(q, k, v, h, w, b))
        return self._roll(window_merge(out, self.window, h, w), back=True)


class SpectralAttention(nn.Module):
    """Restormer MDTA: attention across channels (C/heads x C/heads per head), linear in H*W."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.qkv_dw = nn.Conv2d(3 * channels, 3 * channels, 3, padding=1, groups=3 * channels)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (rearrange(t, "b (hd c) y x -> b hd c (y x)", hd=self.heads) for t in (q, k, v))
        q, k = F.normalize(q.float(), dim=-1), F.normalize(k.float(), dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1).to(v.dtype)
        out = rearrange(attn @ v, "b hd c (y x) -> b (hd c) y x", y=h, x=w)
        return self.proj(out)


class GatedFFN(nn.Module):
    """Restormer GDFN: 1x1 expand, 3x3 depth-wise, GELU gate, 1x1 project."""

    def __init__(self, channels: int, expansion: float = 2.66):
        super().__init__()
        hidden = int(channels * expansion)
        self.expand = nn.Conv2d(channels, 2 * hidden, 1)
        self.dw = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden)
        self.project = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dw(self.expand(x)).chunk(2, dim=1)
        return self.project(F.gelu(a) * b)


class NoiseLevelEmbedding(nn.Module):
    """sqrt(gamma) in [0, 1] -> (B, C): sinusoids of ``scale * sqrt(gamma)`` then an MLP."""

    def __init__(self, channels: int, scale: float = 5000.0):
        super().__init__()
        self.channels, self.scale = channels, scale
        self.mlp = nn.Sequential(nn.Linear(channels, 4 * channels), nn.SiLU(), nn.Linear(4 * channels, channels))

    def forward(self, noise_level: torch.Tensor) -> torch.Tensor:
        half = self.channels // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=noise_level.device, dtype=torch.float32) / half)
        angles = self.scale * noise_level.float().reshape(-1, 1) * freqs[None]
        enc = torch.cat([angles.sin(), angles.cos()], dim=1)
        if self.channels % 2:
            enc = F.pad(enc, (0, 1))
        return self.mlp(enc)


class ConvBlock(nn.Module):
    """Residual 3x3 conv block (the CNN ablation's replacement of an S2TL)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(1, channels), nn.Conv2d(channels, channels, 3, padding=1), nn.GELU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
