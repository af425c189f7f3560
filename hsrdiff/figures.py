"""Figures of the evaluation: false-colour composites, error maps, spectra, uncertainty.

All panels of one figure share one scale (one stretch for the composites, one colour range for
the error maps), so methods are compared by eye as in the paper's Figs. 6-8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from hsrdiff.errors import DataError
from hsrdiff.files import read_fused, read_ground_truth
from hsrdiff.io import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def rgb_bands(wavelengths: np.ndarray) -> list[int]:
    """Bands nearest 640, 550 and 460 nm; evenly spread bands when the range misses them."""
    wl = np.asarray(wavelengths, dtype=float)
    targets = (640.0, 550.0, 460.0)
    if wl.min() <= 460 and wl.max() >= 640:
        return [int(np.abs(wl - t).argmin()) for t in targets]
    n = len(wl)
    return [int(n * 0.8), int(n * 0.5), int(n * 0.2)]


def false_colour(cube: np.ndarray, bands: list[int], low: np.ndarray, high: np.ndarray) -> np.ndarray:
    rgb = np.transpose(cube[bands], (1, 2, 0))
    return np.clip((rgb - low) / np.maximum(high - low, 1e-6), 0, 1)


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)


def composite_figure(gt: np.ndarray, fused: Mapping[str, np.ndarray], wavelengths: np.ndarray, path, title: str = "") -> None:
    plt = _plt()
    bands = rgb_bands(wavelengths)
    rgb_gt = np.transpose(gt[bands], (1, 2, 0))
    low, high = np.percentile(rgb_gt, 1, axis=(0, 1)), np.percentile(rgb_gt, 99, axis=(0, 1))
    panels = {"ground truth": gt, **fused}
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.3))
    for ax, (name, cube) in zip(np.atleast_1d(axes), panels.items()):
        ax.imshow(false_colour(cube, bands, low, high))
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    fig.suptitle(f"{title}  (R, G, B = {', '.join(f'{wavelengths[b]:.0f}' for b in bands)} nm)", fontsize=10)
    _save(fig, path)


def error_figure(gt: np.ndarray, fused: Mapping[str, np.ndarray], path, title: str = "",
                 uncertainty: np.ndarray | None = None) -> None:
    """Per-pixel mean absolute error over bands on one colour scale; the uncertainty map beside it."""
    plt = _plt()
    errors = {name: np.abs(cube - gt).mean(axis=0) for name, cube in fused.items()}
    vmax = max(float(np.percentile(e, 99.5)) for e in errors.values()) or 1e-6
    n = len(errors) + (uncertainty is not None)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.3))
    axes = np.atleast_1d(axes)
    for ax, (name, err) in zip(axes, errors.items()):
        im = ax.imshow(err, cmap="magma", vmin=0, vmax=vmax)
        ax.set_title(f"{name}\nmean |error| {err.mean():.4f}", fontsize=9)
        ax.axis("off")
    fig.colorbar(im, ax=axes[: len(errors)].tolist(), fraction=0.03, pad=0.02, label="mean |error| over bands")
    if uncertainty is not None:
        ax = axes[-1]
        um = uncertainty.mean(axis=0)
        im2 = ax.imshow(um, cmap="viridis", vmin=0)
        ax.set_title("hsrdiff uncertainty\n(std over samples)", fontsize=9)
        ax.axis("off")
        fig.colorbar(im2, ax=ax, fraction=0.046, pad=0.02)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def spectra_figure(gt: np.ndarray, fused: Mapping[str, np.ndarray], wavelengths: np.ndarray, path, title: str = "",
                   n_pixels: int = 3) -> None:
    """Spectra at the pixels where the first method errs most, least, and at the median."""
    plt = _plt()
    first = next(iter(fused.values()))
    err = np.abs(first - gt).mean(axis=0).ravel()
    order = np.argsort(err)
    picks = [order[-1], order[len(order) // 2], order[0]][:n_pixels]
    labels = ["largest error", "median error", "smallest error"]
    fig, axes = plt.subplots(1, len(picks), figsize=(4 * len(picks), 3.2), sharey=True)
    for ax, idx, label in zip(np.atleast_1d(axes), picks, labels):
        r, c = np.unravel_index(idx, gt.shape[1:])
        ax.plot(wavelengths, gt[:, r, c], "k-", lw=2, label="ground truth")
        for name, cube in fused.items():
            ax.plot(wavelengths, cube[:, r, c], lw=1.2, label=name)
        ax.set_title(f"pixel ({r}, {c}): {label}", fontsize=9)
        ax.set_xlabel("wavelength (nm)")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("reflectance (scaled)")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10, y=1.03)
    _save(fig, path)


def scene_figures(degraded_path: str | Path, fused_paths: Mapping[str, str | Path], outputs: Mapping[str, str | Path],
                  title: str = "") -> None:
    """The three figures of one test scene from its degraded file and each method's fused file."""
    gt, _, wavelengths = read_ground_truth(degraded_path)
    if wavelengths is None:
        raise DataError(f"{degraded_path}: no 'wavelengths' to label the figures with")
    fused, uncertainty = {}, None
    for name, path in fused_paths.items():
        result = read_fused(path).result
        fused[name] = result.fused
        if result.std is not None and uncertainty is None:
            uncertainty = result.std
    composite_figure(gt, fused, wavelengths, outputs["composite"], title)
    error_figure(gt, fused, outputs["errors"], title, uncertainty)
    spectra_figure(gt, fused, wavelengths, outputs["spectra"], title)


def pair_figure(lr_hsi: np.ndarray, hr_msi: np.ndarray, fused: Mapping[str, np.ndarray], wavelengths: np.ndarray,
                srf: np.ndarray, path, title: str = "") -> None:
    """A real pair at full resolution: false colour of the LR-HSI, the MSI and each result (one
    stretch, from the LR-HSI), each uncertainty map (``fused`` keys ending in " std": the band
    mean of the per-pixel standard deviation) and the MSI response estimated over the HSI bands."""
    plt = _plt()
    bands = rgb_bands(wavelengths)
    rgb_lr = np.transpose(lr_hsi[bands], (1, 2, 0))
    low, high = np.percentile(rgb_lr, 1, axis=(0, 1)), np.percentile(rgb_lr, 99, axis=(0, 1))
    msi = np.transpose(hr_msi[:3] if hr_msi.shape[0] >= 3 else np.repeat(hr_msi[:1], 3, 0), (1, 2, 0))
    msi_low, msi_high = np.percentile(msi, 1, axis=(0, 1)), np.percentile(msi, 99, axis=(0, 1))
    images = {"LR-HSI (observed)": false_colour(lr_hsi, bands, low, high),
              "MSI (observed, offset removed)": np.clip((msi - msi_low) / np.maximum(msi_high - msi_low, 1e-6), 0, 1)}
    images.update({name: false_colour(cube, bands, low, high) for name, cube in fused.items() if not name.endswith(" std")})
    maps = {name: cube.mean(0) for name, cube in fused.items() if name.endswith(" std")}
    n = len(images) + len(maps) + 1
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.3 * rows))
    axes = np.atleast_1d(axes).ravel()
    for ax, (name, image) in zip(axes, images.items()):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    for ax, (name, image) in zip(axes[len(images):], maps.items()):
        shown = ax.imshow(image, cmap="magma")
        # below the map: a bar at its side put its labels over the neighbouring response plot's axis
        fig.colorbar(shown, ax=ax, orientation="horizontal", fraction=0.046, pad=0.04)
        ax.set_title(f"{name.replace(' std', '')}: std of the samples", fontsize=9)
        ax.axis("off")
    ax = axes[len(images) + len(maps)]
    for k, curve in enumerate(srf):
        ax.plot(wavelengths, curve, label=f"MSI band {k}")
    ax.set_xlabel("wavelength (nm)", fontsize=8)
    ax.set_title("estimated MSI response", fontsize=9)
    ax.legend(fontsize=7)
    for ax in axes[n:]:
        ax.axis("off")
    fig.suptitle(f"{title}  (R, G, B = {', '.join(f'{wavelengths[b]:.0f}' for b in bands)} nm)", fontsize=10)
    _save(fig, path)
