"""CDFormer (METHOD.md §4) and the ablation architectures that share its interface.

Every network here is a denoiser ``f(x_t, sqrt_gamma, lr_hsi, hr_msi) -> x0_hat`` split in two:

- ``encode(lr_hsi, hr_msi) -> Condition``: everything that depends on the observations only (the
  SR stream's hierarchical features ``F_k``), computed once per image;
- ``denoise(x_t, noise_level, condition) -> x0_hat``: one refinement step's prediction.

Images are (batch, bands, height, width) in the diffusion's [-1, 1] range. Inputs whose size is
not a multiple of the window are padded (reflect) and the prediction cropped back. The networks
know nothing of noise schedules: they see only the noise level sqrt(gamma).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from hsrdiff.models.blocks import (
    ConvBlock,
    GatedFFN,
    LayerNorm2d,
    NoiseLevelEmbedding,
    SpectralAttention,
    WindowAttention,
    WindowCrossAttention,
)

ARCHITECTURES = ("cdformer", "no-sr-stream", "cnn", "u-net")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a network (stored in every checkpoint and weights file)."""

    hsi_bands: int
    msi_bands: int
    architecture: str = "cdformer"
    channels: int = 32
    depth: int = 4
    heads: int = 2
    window: int = 8
    ffn_expansion: float = 2.66
    noise_embedding_scale: float = 5000.0
    preconditioning: str = "none"  # or "residual" (EDM's c_skip/c_out around the upsampled LR-HSI)
    residual_std: float = 0.1
    # What the network's residual is added to: the bicubic-upsampled LR-HSI, or the GLP-HS or
    # CNMF fusion of the two observations (which need the PSF of the training data, and CNMF its
    # SRF matrix, kept here so that a weights file alone rebuilds the network: {kernel, ratio,
    # mode, offset} and the (l, L) rows).
    base: str = "bicubic"
    base_psf: dict | None = None
    base_srf: list | None = None
    # CGLS iterations projecting the base onto the observations before the network sees it (0: off).
    base_consistency: int = 0
    # Mean bases only (hsrdiff.bases.MEAN_BASES): the weights of the parts after the first
    # (glp-hs+cnmf: CNMF's; glp-hs+cnmf+gsa: [CNMF's, GSA's]; glp-hs+cnmf+gsa+hysure: [CNMF's, GSA's,
    # HySure's]), the first taking the rest; None: equal.
    base_weight: float | list[float] | None = None
    # What the diffusion noises: the image x0 ("image", SR3's and the paper's) or the scaled
    # residual (x0 - base) / residual_scale ("residual", ours, as SRDiff), on the [-1, 1] scale.
    diffuse: str = "image"
    residual_scale: float = 1.0
    # Self-conditioning (Chen, Zhang and Hinton 2022, "Analog Bits"): the denoising stream also
    # sees the previous step's x0 estimate (as a residual on the base; zeros at the first step),
    # so that sampling refines an estimate instead of drawing each step's afresh.
    self_condition: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def base_name(self) -> str:
        """The base's name (``hsrdiff.bases.base_name``): what patch files key it by."""
        from hsrdiff.bases import base_name

        return base_name(self.base, self.base_consistency, self.base_weight)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        data = dict(data)
        if "variant" in data:  # weights files written before the key was renamed
            data["architecture"] = data.pop("variant")
        return cls(**data)


@dataclass
class Condition:
    """What ``encode`` computes once per image and every ``denoise`` call reuses.

    ``lr_up``: the bicubic-upsampled LR-HSI (B, L, Hp, Wp), padded; ``inputs``: concat(lr_up,
    hr_msi) padded; ``features``: the SR stream's ``F_k`` (empty for architectures without it);
    ``size``: the unpadded (H, W).
    """

    lr_up: torch.Tensor
    inputs: torch.Tensor
    features: list[torch.Tensor] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)

    def repeat(self, n: int) -> "Condition":
        """The same condition for ``n`` samples of each image (batch grows n-fold)."""
        rep = lambda t: t.repeat_interleave(n, dim=0)  # noqa: E731
        return Condition(rep(self.lr_up), rep(self.inputs), [rep(f) for f in self.features], self.size)


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not ph and not pw:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class Denoiser(nn.Module):
    """Shared encode/denoise plumbing: upsampling, padding, residual on the upsampled LR-HSI."""

    pad_multiple: int = 1

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        if config.diffuse not in ("image", "residual"):
            raise ValueError(f"unknown model.diffuse '{config.diffuse}'; expected image or residual")
        if config.preconditioning not in ("none", "residual"):
            raise ValueError(f"unknown model.preconditioning '{config.preconditioning}'; expected none or residual")
        if not config.residual_scale > 0:
            raise ValueError(f"model.residual_scale must be positive; got {config.residual_scale}")
        # Recompute each layer's activations in the backward pass instead of storing them:
        # what lets the paper's width train on full-resolution images (set by the trainer).
        self.activation_checkpointing = False

    def _run(self, layer: nn.Module, *args):
        if self.activation_checkpointing and self.training and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(layer, *args, use_reentrant=False)
        return layer(*args)

    def base(self, lr_hsi: torch.Tensor, hr_msi: torch.Tensor) -> torch.Tensor:
        """The image the residual is added to (``config.base``), on the model's [-1, 1] scale.

        Computed from the images given: a crop's base differs from the crop of the whole image's
        base (far more so at large ratios), so training and tiled fusion pass the whole scene's.
        """
        from hsrdiff.bases import base_operators
        from hsrdiff.baselines import fusion_base
        from hsrdiff.degradation import PSF

        name = self.config.base_name()
        needs_psf, needs_srf = base_operators(name)
        psf = srf = None
        if needs_psf:
            if not self.config.base_psf:
                raise ValueError(f"model base {name} needs base_psf (the trainer sets it from the patch file's PSF)")
            if getattr(self, "_psf", None) is None:
                self._psf = PSF.from_dict(self.config.base_psf)
            psf = self._psf
        if needs_srf:
            if not self.config.base_srf:
                raise ValueError(f"model base {name} needs base_srf (the trainer sets it from the patch file's SRF)")
            srf = self.config.base_srf
        return fusion_base(name, (lr_hsi + 1) * 0.5, (hr_msi + 1) * 0.5, psf, srf) * 2 - 1

    def to_diffusion(self, x0: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """The variable the diffusion noises, from an image x0 and its base (both on [-1, 1])."""
        if self.config.diffuse == "residual":
            return (x0 - base) / self.config.residual_scale
        return x0

    def from_diffusion(self, y: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """The image on [-1, 1] that the diffusion variable ``y`` stands for (inverse of ``to_diffusion``)."""
        if self.config.diffuse == "residual":
            return base + self.config.residual_scale * y
        return y

    def encode(self, lr_hsi: torch.Tensor, hr_msi: torch.Tensor, base: torch.Tensor | None = None) -> Condition:
        """``base``: the base of these images cut from the whole scene's ([-1, 1]); None computes it here."""
        size = tuple(hr_msi.shape[-2:])
        lr_up = self.base(lr_hsi, hr_msi) if base is None else base
        lr_up = _pad_to_multiple(lr_up, self.pad_multiple)
        inputs = torch.cat([lr_up, _pad_to_multiple(hr_msi, self.pad_multiple)], dim=1)
        return Condition(lr_up, inputs, self._features(inputs), size)

    def denoise(self, x_t: torch.Tensor, noise_level: torch.Tensor, features: Condition,
                previous: torch.Tensor | None = None) -> torch.Tensor:
        """x0_hat, the image on [-1, 1], from ``x_t``, the noised diffusion variable (``to_diffusion``).

        ``previous``: the previous x0 estimate (the image on [-1, 1], unpadded) for a
        self-conditioned network (``config.self_condition``); None means none yet (zeros)."""
        h, w = features.size
        x = _pad_to_multiple(x_t, self.pad_multiple)
        lr_up = features.lr_up
        prev = self._previous_input(previous, x, lr_up)
        if self.config.diffuse == "residual":
            # x_t is already a residual (u = 0 in its space) of unit spread (residual_scale), so
            # the preconditioning below runs with r = 1.
            y0_hat = self._preconditioned(x, noise_level, features, 1.0, prev)
            x0_hat = lr_up + self.config.residual_scale * y0_hat
        else:
            # with preconditioning residual, x_t - g u = g (x0 - u) + s eps is the noisy residual
            g = noise_level.to(x.dtype).reshape(-1, 1, 1, 1) if self.config.preconditioning == "residual" else 0.0
            x0_hat = lr_up + self._preconditioned(x - g * lr_up, noise_level, features, self.config.residual_std, prev)
        return x0_hat[..., :h, :w]

    def _previous_input(self, previous: torch.Tensor | None, x: torch.Tensor, lr_up: torch.Tensor) -> torch.Tensor | None:
        """The self-conditioning input: the previous estimate's residual on the base, scaled to
        about unit spread like the diffusion variable (residual_scale, or residual_std for image
        diffusion); zeros before the first estimate. None for a network without self-conditioning."""
        if not self.config.self_condition:
            if previous is not None:
                raise ValueError("this network was not trained with self-conditioning (model.self_condition); "
                                 "it takes no previous estimate")
            return None
        if previous is None:
            return torch.zeros_like(x)
        scale = self.config.residual_scale if self.config.diffuse == "residual" else self.config.residual_std
        return (_pad_to_multiple(previous, self.pad_multiple) - lr_up) / scale

    def _preconditioned(self, noisy_residual: torch.Tensor, noise_level: torch.Tensor, features: Condition,
                        r: float, previous: torch.Tensor | None = None) -> torch.Tensor:
        """The residual estimate from the noisy residual g (x0 - u) + s eps: the network's output
        alone (preconditioning none), or EDM's c_skip times the input plus c_out times the network
        on the input scaled to unit spread (residual): the linear MMSE estimate carries what the
        input shows, which at low noise the network then cannot ignore or blur."""
        if self.config.preconditioning == "none":
            return self._residual(self._with_previous(noisy_residual, previous), noise_level, features)
        g = noise_level.to(noisy_residual.dtype).reshape(-1, 1, 1, 1)
        s = (1 - g * g).clamp_min(0).sqrt()
        d = (g * g * r * r + s * s).clamp_min(1e-12).sqrt()
        return (g * r * r / (d * d)) * noisy_residual + \
            (r * s / d) * self._residual(self._with_previous(noisy_residual / d, previous), noise_level, features)

    @staticmethod
    def _with_previous(x: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        """The denoising stream's image input: x_t, with the self-conditioning channels after it."""
        return x if previous is None else torch.cat([x, previous], dim=1)

    def in_bands(self) -> int:
        """Bands of the denoising stream's image input (``_with_previous``)."""
        return self.config.hsi_bands * (2 if self.config.self_condition else 1)

    def forward(self, x_t, noise_level, lr_hsi, hr_msi, base=None, previous=None) -> torch.Tensor:
        return self.denoise(x_t, noise_level, self.encode(lr_hsi, hr_msi, base), previous)

    def second_half_parameters(self) -> list[nn.Parameter]:
        """The parameters the paper's last (full-image) stage trains; the rest stay frozen."""
        raise NotImplementedError

    def _features(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        return []

    def _residual(self, x: torch.Tensor, noise_level: torch.Tensor, cond: Condition) -> torch.Tensor:
        raise NotImplementedError


class S2TL(nn.Module):
    """Spatio-spectral transformer layer: window attention, spectral attention, gated FFN.

    With ``conv=True`` (the CDCNN ablation) the layer is a residual conv block instead.
    """

    def __init__(self, cfg: ModelConfig, shift: bool, conv: bool = False):
        super().__init__()
        c = cfg.channels
        self.conv = ConvBlock(c) if conv else None
        if not conv:
            self.norm1, self.spatial = LayerNorm2d(c), WindowAttention(c, cfg.heads, cfg.window, shift)
            self.norm2, self.spectral = LayerNorm2d(c), SpectralAttention(c, cfg.heads)
            self.norm3, self.ffn = LayerNorm2d(c), GatedFFN(c, cfg.ffn_expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is not None:
            return self.conv(x)
        x = x + self.spatial(self.norm1(x))
        x = x + self.spectral(self.norm2(x))
        return x + self.ffn(self.norm3(x))


class NCS2TL(nn.Module):
    """Noise-aware conditional S2TL: noise FiLM, the SR feature ``F_k`` merged in, cross-attention
    to ``F_k``, then an S2TL.

    ``F_k`` enters twice (ours): added through a 1x1 projection, then attended to. At high noise
    the denoising features carry no image content, so their queries cannot tell the pixels of a
    window apart and cross-attention alone passes only a per-window mix of ``F_k``; the additive
    path gives every pixel its own feature. In the CNN ablation the projection is the only path.
    """

    def __init__(self, cfg: ModelConfig, shift: bool, cross: bool = True, conv: bool = False):
        super().__init__()
        c = cfg.channels
        self.film = nn.Linear(c, 2 * c)
        self.inject = nn.Conv2d(c, c, 1) if cross else None
        self.cross = None
        if cross and not conv:
            self.norm_q, self.norm_kv = LayerNorm2d(c), LayerNorm2d(c)
            self.cross = WindowCrossAttention(c, cfg.heads, cfg.window, shift)
        self.layer = S2TL(cfg, shift, conv=conv)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        scale, shift = self.film(embedding)[..., None, None].chunk(2, dim=1)
        x = x * (1 + scale) + shift
        if self.inject is not None:
            x = x + self.inject(context)
        if self.cross is not None:
            x = x + self.cross(self.norm_q(x), self.norm_kv(context))
        return self.layer(x)


class CDFormer(Denoiser):
    """Two streams of ``depth`` layers: the SR stream (S2TLs on the observations) and the
    denoising stream (NC-S2TLs on x_t, each attending to the SR stream's feature of its depth).

    ``architecture``: "cdformer"; "no-sr-stream" (C-w/o-SR: observations concatenated to x_t, no SR
    stream, no cross-attention); "cnn" (CDCNN: every S2TL a residual conv block).
    """

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        cfg, c, k = config, config.channels, config.depth
        conv = cfg.architecture == "cnn"
        self.has_sr_stream = cfg.architecture != "no-sr-stream"
        self.pad_multiple = 1 if conv else cfg.window
        cond_bands = cfg.hsi_bands + cfg.msi_bands
        if self.has_sr_stream:
            self.sr_embed = nn.Conv2d(cond_bands, c, 3, padding=1)
            self.sr_layers = nn.ModuleList(S2TL(cfg, shift=bool(i % 2), conv=conv) for i in range(k))
            dn_in = self.in_bands()
        else:
            dn_in = self.in_bands() + cond_bands
        self.noise_embedding = NoiseLevelEmbedding(c, cfg.noise_embedding_scale)
        self.dn_embed = nn.Conv2d(dn_in, c, 3, padding=1)
        self.dn_layers = nn.ModuleList(
            NCS2TL(cfg, shift=bool(i % 2), cross=self.has_sr_stream, conv=conv) for i in range(k)
        )
        self.reconstruct = nn.Conv2d(c, cfg.hsi_bands, 3, padding=1)
        self._init_weights()

    def _init_weights(self) -> None:
        # Swin's initialisation of linear layers: with PyTorch's default (larger) weights the
        # attention branches scramble the features at first and the demo-sized model learns
        # several times slower.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # Noise modulation and the residual branch start at zero: the network begins as the
        # upsampled LR-HSI.
        for layer in self.dn_layers:
            nn.init.zeros_(layer.film.weight)
            nn.init.zeros_(layer.film.bias)
        nn.init.zeros_(self.reconstruct.weight)
        nn.init.zeros_(self.reconstruct.bias)

    def _features(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        if not self.has_sr_stream:
            return []
        feats, f = [], self.sr_embed(inputs)
        for layer in self.sr_layers:
            f = self._run(layer, f)
            feats.append(f)
        return feats

    def _residual(self, x: torch.Tensor, noise_level: torch.Tensor, cond: Condition) -> torch.Tensor:
        emb = self.noise_embedding(noise_level)
        h = self.dn_embed(x if self.has_sr_stream else torch.cat([x, cond.inputs], dim=1))
        for k, layer in enumerate(self.dn_layers):
            h = self._run(layer, h, emb, cond.features[k] if self.has_sr_stream else None)
        return self.reconstruct(h)

    def second_half_parameters(self) -> list[nn.Parameter]:
        half = self.config.depth // 2
        modules = [*self.dn_layers[half:], self.reconstruct]
        if self.has_sr_stream:
            modules += list(self.sr_layers[half:])
        return [p for m in modules for p in m.parameters()]


class _FiLMResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, c_emb: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(min(8, c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(c_emb, 2 * c_out)
        self.norm2, self.conv2 = nn.GroupNorm(min(8, c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[..., None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class UNet(Denoiser):
    """SR3-style conv U-Net on concat(x_t, upsampled LR-HSI, HR-MSI) (the "u-net" ablation).

    Two resolutions below the input (channels C, 2C, 4C), one FiLM res-block per level and way.
    """

    pad_multiple = 4

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        c = config.channels
        self.noise_embedding = NoiseLevelEmbedding(c, config.noise_embedding_scale)
        self.inp = nn.Conv2d(self.in_bands() + config.hsi_bands + config.msi_bands, c, 3, padding=1)
        widths = (c, 2 * c, 4 * c)
        self.down = nn.ModuleList(_FiLMResBlock(widths[i], widths[i], c) for i in range(3))
        self.downsample = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1) for i in range(2))
        self.mid = _FiLMResBlock(widths[2], widths[2], c)
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(2))
        self.up = nn.ModuleList(_FiLMResBlock(2 * widths[i], widths[i], c) for i in range(2))
        self.out = nn.Sequential(nn.GroupNorm(min(8, c), c), nn.SiLU(), nn.Conv2d(c, config.hsi_bands, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def _residual(self, x, noise_level, cond):
        emb = self.noise_embedding(noise_level)
        h = self.inp(torch.cat([x, cond.inputs], dim=1))
        skips = []
        for i in range(2):
            h = self.down[i](h, emb)
            skips.append(h)
            h = self.downsample[i](h)
        h = self.mid(self.down[2](h, emb), emb)
        for i in (1, 0):
            h = self.up[i](torch.cat([self.upsample[i](h), skips[i]], dim=1), emb)
        return self.out(h)

    def second_half_parameters(self):
        modules = [self.mid, *self.upsample, *self.up, self.out]
        return [p for m in modules for p in m.parameters()]


def build_model(config: ModelConfig) -> Denoiser:
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f"unknown model architecture '{config.architecture}'; expected one of {', '.join(ARCHITECTURES)}")
    return UNet(config) if config.architecture == "u-net" else CDFormer(config)
