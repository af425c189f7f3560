"""The embedded demo dataset: CAVE-like scenes generated offline, deterministically, in seconds.

Each scene is ``shading * sum_k abundance_k * spectrum_k`` on 31 bands (400-700 nm, 10 nm):

- spatial structure comes from real photographs shipped with scikit-image (test scenes use
  photographs no training scene uses);
- ``n_endmembers`` smooth reflectance spectra per scene, drawn from a library of vegetation-,
  soil-, water- and pigment-like curves, are mixed with abundances that depend on the photograph
  *and* on independent smooth random fields. With more endmembers than the MSI has bands, the
  HR-MSI cannot be inverted to the HSI by a fixed linear map, and the LR-HSI lacks the detail,
  so neither input alone determines the target.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from scipy import ndimage

from hsrdiff.io import atomic_h5, write_attrs

log = logging.getLogger(__name__)

WAVELENGTHS = np.arange(400.0, 701.0, 10.0)
TRAIN_PHOTOS = ("brick", "camera", "chelsea", "clock", "coins", "grass", "gravel", "hubble_deep_field", "moon", "retina", "cell")
TEST_PHOTOS = ("coffee", "rocket", "immunohistochemistry", "astronaut")


def scene_names(settings: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Names of the generated training and test scenes."""
    n_train, n_test = settings.get("n_train", 16), settings.get("n_test", 4)
    return [f"train_{i:02d}" for i in range(n_train)], [f"test_{i:02d}" for i in range(n_test)]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def spectrum_library(rng: np.random.Generator, n: int = 32) -> np.ndarray:
    """``n`` smooth reflectance curves on :data:`WAVELENGTHS`, values in [0.02, 0.95]; (n, 31)."""
    wl = WAVELENGTHS
    curves = []
    for i in range(n):
        kind = i % 5
        if kind == 0:  # vegetation: green peak, chlorophyll absorption, red-edge onset
            c = 0.04 + rng.uniform(0.05, 0.15) * np.exp(-0.5 * ((wl - rng.uniform(540, 560)) / 25) ** 2)
            c += rng.uniform(0.2, 0.5) * _sigmoid((wl - rng.uniform(690, 715)) / 8)
        elif kind == 1:  # soil / rock: rising, slightly curved
            c = rng.uniform(0.05, 0.2) + rng.uniform(0.1, 0.4) * ((wl - 400) / 300) ** rng.uniform(0.6, 1.6)
        elif kind == 2:  # water / blue materials: falling
            c = rng.uniform(0.02, 0.08) + rng.uniform(0.1, 0.4) * np.exp(-(wl - 400) / rng.uniform(40, 150))
        else:  # pigments (two kinds of four): a step plus a bump, anywhere in the range
            c = rng.uniform(0.03, 0.15) + rng.uniform(0.2, 0.7) * _sigmoid(rng.choice([-1, 1]) * (wl - rng.uniform(450, 650)) / rng.uniform(8, 30))
            for _ in range(2):  # narrow features make the spectra more than three-dimensional
                c += rng.uniform(-0.15, 0.3) * np.exp(-0.5 * ((wl - rng.uniform(410, 690)) / rng.uniform(12, 35)) ** 2)
        curves.append(np.clip(c, 0.02, 0.95))
    return np.stack(curves)


def _photo(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)().astype(np.float64)
    img = img / max(img.max(), 1.0)
    return img[..., :3] if img.ndim == 3 else img[..., None]


def _scene(photo: np.ndarray, library: np.ndarray, size: int, n_endmembers: int, rng: np.random.Generator) -> np.ndarray:
    from skimage.transform import resize

    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.5, 1.0))
    r0, c0 = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = resize(photo[r0 : r0 + side, c0 : c0 + side], (size, size), anti_aliasing=True)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    luminance = crop.mean(axis=2)

    features = [crop[..., c] for c in range(crop.shape[2])]
    features.append(ndimage.gaussian_gradient_magnitude(luminance, 1.5))
    features.append(ndimage.gaussian_filter(luminance, 4.0))
    for _ in range(2):  # independent of the photograph: the MSI cannot predict these
        features.append(ndimage.gaussian_filter(rng.standard_normal((size, size)), size / 10))
    feats = np.stack([(f - f.mean()) / (f.std() + 1e-8) for f in features])

    weights = rng.normal(0.0, 1.0, (n_endmembers, feats.shape[0]))
    logits = np.einsum("kf,fhw->khw", weights, feats) * rng.uniform(1.5, 3.0)
    abundances = np.exp(logits - logits.max(axis=0, keepdims=True))
    abundances /= abundances.sum(axis=0, keepdims=True)

    spectra = library[rng.choice(len(library), n_endmembers, replace=False)]
    # Endmember variability: each material's spectrum drifts smoothly across the scene along a
    # smooth spectral direction of its own, as real materials do; a fixed set of endmembers
    # (what unmixing methods assume) then no longer explains the scene exactly.
    wl = (WAVELENGTHS - 550.0) / 150.0
    drift = np.stack([rng.uniform(0.03, 0.08) * np.sin(rng.uniform(1, 3) * wl + rng.uniform(0, 2 * np.pi)) for _ in range(n_endmembers)])
    fields = np.stack([ndimage.gaussian_filter(rng.standard_normal((size, size)), size / 12) for _ in range(n_endmembers)])
    fields /= fields.std(axis=(1, 2), keepdims=True) + 1e-8
    reflectance = np.einsum("kb,khw->bhw", spectra, abundances) + np.einsum("kb,khw->bhw", drift, abundances * fields)
    # Illumination: brightness from the photograph, and a spectral tilt that varies in space
    # (shadows are bluer than sunlit areas).
    shading = 0.55 + 0.45 * (luminance - luminance.min()) / (np.ptp(luminance) + 1e-8)
    tilt = ndimage.gaussian_filter(rng.standard_normal((size, size)), size / 8)
    tilt = 0.15 * tilt / (np.abs(tilt).max() + 1e-8)
    illumination = shading[None] * (1.0 + tilt[None] * wl[:, None, None])
    return np.clip(reflectance * illumination, 0.0, 1.0).astype(np.float32)


def generate_demo(settings: Mapping[str, Any], out_path: str | Path) -> dict:
    """Write every demo scene to one HDF5 file: ``scenes/<name>`` (31, size, size) and ``wavelengths``."""
    seed = int(settings.get("seed", 0))
    size = int(settings.get("size", 128))
    n_endmembers = int(settings.get("n_endmembers", 6))
    root = np.random.SeedSequence(seed)
    library = spectrum_library(np.random.default_rng(root.spawn(1)[0]))
    train, test = scene_names(settings)
    # One child seed per scene: a scene does not change when the number of scenes does.
    names = [(n, TRAIN_PHOTOS[i % len(TRAIN_PHOTOS)]) for i, n in enumerate(train)]
    names += [(n, TEST_PHOTOS[i % len(TEST_PHOTOS)]) for i, n in enumerate(test)]
    photos: dict[str, np.ndarray] = {}
    with atomic_h5(out_path) as fh:
        fh.create_dataset("wavelengths", data=WAVELENGTHS)
        for name, photo in names:
            if photo not in photos:
                photos[photo] = _photo(photo)
            child = np.random.SeedSequence([seed, *name.encode()])
            cube = _scene(photos[photo], library, size, n_endmembers, np.random.default_rng(child))
            dset = fh.create_dataset(f"scenes/{name}", data=cube, chunks=(1, size, size))
            dset.attrs["photo"] = photo
        write_attrs(fh, {"generator": "hsrdiff.data.demo", "seed": seed, "size": size, "n_endmembers": n_endmembers})
    log.info("generated %d demo scenes of %dx%dx%d in %s", len(names), len(WAVELENGTHS), size, size, out_path)
    return {"scenes": len(names), "size": size}
