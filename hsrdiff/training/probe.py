"""Does a trained network get below its base? The training loss over a whole patch file.

A network adds its output to a classical fusion (``model.base``) and starts as that fusion (its
output convolution is zero at first). Whether training taught it anything shows on the training
data itself: the loss of METHOD.md §3 over every patch of the file (no flips), of the base alone
and of the network, each network with the base it was trained on (``base_<name>`` in the file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import h5py
import torch

from hsrdiff.data.patches import BASE_PREFIX, PatchDataset
from hsrdiff.diffusion.loss import fusion_loss
from hsrdiff.diffusion.scaling import to_data_range, to_model_range
from hsrdiff.errors import DataError
from hsrdiff.models.weights import load_weights

TERMS = ("loss", "l1", "lr_term", "msi_term")


@torch.no_grad()
def loss_against_base(weights: Sequence[str | Path], patch_file: str | Path, batch: int = 32, seed: int = 0,
                      device: str | torch.device = "cpu") -> list[dict]:
    """One row per weights file: its base's name, and the mean loss terms (``TERMS``) over the
    patches of the base alone (``base_*``) and of the network (``net_*``). A diffusion network
    predicts from pure noise (sqrt(gamma) = 0, noise seeded by ``seed``), a regression one from
    x_t = 0, as they fuse."""
    dataset = PatchDataset(patch_file)
    psf, srf = dataset.operators()
    srf = torch.as_tensor(srf, dtype=torch.float32, device=device)
    models = []
    for path in weights:
        model, blob = load_weights(path, device)
        model.eval()
        name = model.config.base_name()
        if BASE_PREFIX + name not in dataset.keys:
            held = [k[len(BASE_PREFIX):] for k in dataset.keys if k.startswith(BASE_PREFIX)]
            raise DataError(f"{patch_file}: no '{BASE_PREFIX}{name}' dataset, the base of {path}; the file holds "
                            f"{', '.join(held) or 'no base'} (cut the patches with model.base: {model.config.base})")
        models.append((model, blob["mode"], name))
    sums = [{f"{who}_{t}": 0.0 for who in ("base", "net") for t in TERMS} for _ in models]
    keys = ("gt", "lr_hsi", "hr_msi", *sorted({BASE_PREFIX + name for _, _, name in models}))  # not the other bases
    generator = torch.Generator().manual_seed(seed)
    with h5py.File(dataset.path, "r") as fh:
        n = fh["gt"].shape[0]
        for start in range(0, n, batch):
            part = {k: torch.as_tensor(fh[k][start:start + batch], device=device) for k in keys}
            gt, lr_hsi, hr_msi = part["gt"], part["lr_hsi"], part["hr_msi"]
            noise = torch.randn(gt.shape, generator=generator).to(device)
            for (model, mode, name), acc in zip(models, sums):
                base = part[BASE_PREFIX + name]
                x_t = torch.zeros_like(gt) if mode == "regression" else noise
                x0_hat = model(x_t, torch.zeros(gt.shape[0], device=device), to_model_range(lr_hsi),
                               to_model_range(hr_msi), to_model_range(base))
                for who, image in (("base", base), ("net", to_data_range(x0_hat).clamp(0, 1))):
                    terms = fusion_loss(image, gt, lr_hsi, hr_msi, psf, srf)
                    for t in TERMS:
                        acc[f"{who}_{t}"] += float(terms[t]) * gt.shape[0]
    return [{"weights": str(path), "base": name, **{k: v / n for k, v in acc.items()}}
            for path, (_, _, name), acc in zip(weights, models, sums)]
