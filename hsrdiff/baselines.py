"""Classical baselines: bicubic upsampling, GSA, GLP-HS, CNMF and HySure.

GSA and GLP-HS are the two pansharpening families extended to HS+MS fusion as in Yokoya, Grohnfeldt
and Chanussot, "Hyperspectral and multispectral data fusion: a comparative review of the recent
literature", IEEE GRSM 5(2), 2017 (their section on hypersharpening); both inject the MSI's
spatial detail into the bicubic-upsampled LR-HSI and use the known PSF to tell detail from the
part the LR-HSI already holds:

- GSA (Aiazzi, Baronti and Selva, IEEE TGRS 45(10), 2007), component substitution: the HS bands
  are grouped by the MSI band they correlate with best (at low resolution); per group, an
  intensity ``I`` is the least-squares combination of the group's upsampled bands that matches
  the MSI band degraded to low resolution; the MSI band, matched to ``I``'s mean and standard
  deviation, replaces it: ``fused_i = up_i + g_i (P - I)``, ``g_i = cov(up_i, I) / var(I)``.
- GLP-HS (MTF-GLP with high-pass modulation, Aiazzi et al. 2006; the per-band synthetic
  pan of Selva, Aiazzi, Butera, Chiarantini and Baronti, "Hyper-sharpening", IEEE JSTARS 8(6),
  2015), multiresolution analysis: per HS band, ``P_i`` is the least-squares combination of the
  MSI bands (with an offset) that best predicts that band at low resolution, ``P_i_low`` is
  ``P_i`` blurred and decimated by the PSF and upsampled like the LR-HSI, and
  ``fused_i = up_i * P_i / P_i_low``.

CNMF (Yokoya, Yairi and Iwasaki, "Coupled nonnegative matrix factorization unmixing for
hyperspectral and multispectral data fusion", IEEE TGRS 50(2), 2012): both observations are
unmixed with one set of endmembers and one set of abundances, coupled through the observation
model. With ``W`` (L x M) the endmembers and ``H`` (M x pixels) the abundances:

    lr_hsi ~ W_h H_h,   hr_msi ~ W_m H_m,   W_m = srf W_h,   H_h = spatially degraded H_m,

fitted by alternating Lee-Seung multiplicative updates, with the abundance sum-to-one constraint
imposed by an extra row delta * 1 appended to data and endmembers (as in the paper). The
estimate is W_h H_m. Endmembers start from VCA (Nascimento and Dias, 2005) on the LR-HSI.

HySure (Simoes et al. 2015, :func:`hysure`): a convex problem in a spectral subspace, the fit to
both observations and a vector total variation, solved by ADMM.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from hsrdiff.bases import MEAN_BASES, base_operators, parse_base_name
from hsrdiff.degradation import PSF, spatial_degrade
from hsrdiff.errors import DataError
from hsrdiff.files import FusionResult
from hsrdiff.methods import BASELINES, DETAIL_INJECTION, WITH_SETTINGS

EPS = 1e-9


def _upsample(cube: np.ndarray, ratio: int) -> np.ndarray:
    """Bicubic upsampling of a (bands, h, w) cube, as the ``bicubic`` baseline does (float64)."""
    t = torch.as_tensor(np.asarray(cube, dtype=np.float32))[None]
    return F.interpolate(t, scale_factor=ratio, mode="bicubic", align_corners=False)[0].numpy().astype(np.float64)


def bicubic(lr_hsi: np.ndarray, ratio: int) -> FusionResult:
    """The floor: bicubic upsampling of the LR-HSI (L, h, w) -> (L, h*ratio, w*ratio), clipped to [0, 1]."""
    t0 = time.perf_counter()
    return FusionResult(np.clip(_upsample(lr_hsi, ratio), 0, 1).astype(np.float32), None, time.perf_counter() - t0)


def _lstsq_with_offset(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Coefficients c (k + 1,) minimising |[design; 1]^T c - target| for design (k, N), target (N,)."""
    a = np.vstack([design, np.ones((1, design.shape[1]))]).T
    return np.linalg.lstsq(a, target, rcond=None)[0]


def _check_pair(lr_hsi: np.ndarray, hr_msi: np.ndarray, ratio: int, srf: np.ndarray | None = None) -> None:
    if lr_hsi.ndim != 3 or hr_msi.ndim != 3 or hr_msi.shape[1:] != (lr_hsi.shape[1] * ratio, lr_hsi.shape[2] * ratio):
        raise ValueError(f"hr_msi {hr_msi.shape} must be (bands, H, W) with H, W = ratio {ratio} x lr_hsi {lr_hsi.shape}")
    if srf is not None and np.shape(srf) != (hr_msi.shape[0], lr_hsi.shape[0]):
        raise ValueError(f"srf has shape {np.shape(srf)}, expected (MSI bands {hr_msi.shape[0]}, HSI bands {lr_hsi.shape[0]})")


def gsa(lr_hsi: np.ndarray, hr_msi: np.ndarray, psf: PSF) -> FusionResult:
    """Gram-Schmidt adaptive, grouped by MSI band (module docstring). (L, H, W) on [0, 1]."""
    t0 = time.perf_counter()
    _check_pair(lr_hsi, hr_msi, psf.ratio)
    lr = np.asarray(lr_hsi, dtype=np.float64)
    msi = np.asarray(hr_msi, dtype=np.float64)
    up = _upsample(lr, psf.ratio)
    msi_lr = np.asarray(spatial_degrade(msi, psf), dtype=np.float64)
    n_bands, n_msi = lr.shape[0], msi.shape[0]
    lr_flat, msi_lr_flat = lr.reshape(n_bands, -1), msi_lr.reshape(n_msi, -1)
    corr = np.corrcoef(np.vstack([lr_flat, msi_lr_flat]))[:n_bands, n_bands:]
    group_of = np.argmax(np.nan_to_num(corr, nan=-1.0), axis=1)
    fused = up.copy()
    for k in range(n_msi):
        members = np.flatnonzero(group_of == k)
        if not len(members):
            continue
        c = _lstsq_with_offset(lr_flat[members], msi_lr_flat[k])
        intensity = np.tensordot(c[:-1], up[members], axes=1) + c[-1]
        pan = msi[k]
        pan = (pan - pan.mean()) * intensity.std() / max(pan.std(), EPS) + intensity.mean()
        centred = intensity - intensity.mean()
        var = max(float((centred * centred).mean()), EPS)
        for i in members:
            gain = float(((up[i] - up[i].mean()) * centred).mean()) / var
            fused[i] = up[i] + gain * (pan - intensity)
    return FusionResult(np.clip(fused, 0, 1).astype(np.float32), None, time.perf_counter() - t0)


def glp_hs_batch(lr_hsi: torch.Tensor, hr_msi: torch.Tensor, psf: PSF) -> torch.Tensor:
    """GLP-HS of a batch, (B, L, h, w) and (B, l, H, W) on [0, 1] -> (B, L, H, W) clipped to [0, 1].

    The one implementation: the ``glp-hs`` baseline, and the base a network with ``model.base:
    glp-hs`` adds its output to. Computed in float64, without gradients.
    """
    with torch.no_grad():
        lr = lr_hsi.double()
        msi = hr_msi.double()
        size = tuple(msi.shape[-2:])
        up = F.interpolate(lr, size=size, mode="bicubic", align_corners=False)
        msi_lr = spatial_degrade(msi, psf)
        msi_low = F.interpolate(msi_lr, size=size, mode="bicubic", align_corners=False)
        # per image and HS band: the MSI bands' combination (with an offset) that predicts the band at LR
        design = torch.cat([msi_lr.flatten(2), torch.ones_like(msi_lr[:, :1].flatten(2))], 1).transpose(1, 2)  # (B, n, l+1)
        gram = design.transpose(1, 2) @ design
        ridge = 1e-10 * gram.diagonal(dim1=1, dim2=2).sum(-1)[:, None, None] * torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
        coefs = torch.linalg.solve(gram + ridge, design.transpose(1, 2) @ lr.flatten(2).transpose(1, 2))  # (B, l+1, L)
        pan = torch.einsum("bkl,bkhw->blhw", coefs[:, :-1], msi) + coefs[:, -1, :, None, None]
        pan_low = torch.einsum("bkl,bkhw->blhw", coefs[:, :-1], msi_low) + coefs[:, -1, :, None, None]
        # High-pass modulation; where the synthetic low-pass is near zero, additive injection instead.
        safe = pan_low.abs() > 1e-3
        fused = torch.where(safe, up * pan / torch.where(safe, pan_low, torch.ones_like(pan_low)), up + pan - pan_low)
        return fused.clamp(0, 1).to(lr_hsi.dtype)


def fusion_base(name: str, lr_hsi: torch.Tensor, hr_msi: torch.Tensor, psf: PSF | None,
                srf: np.ndarray | None = None, known: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
    """The image a network adds its output to (``model.base``), (B, L, H, W) on [0, 1].

    One function for every place that needs it: the workflow's base files (each scene's once,
    which the patch files and the sample jobs read), the patch files and fusion when they are not
    given one (``hsrdiff fuse``: on the whole image), the network's ``base`` method.
    ``glp-hs`` needs the PSF, ``cnmf`` and ``hysure`` the PSF and the SRF matrix (l, L); they run
    with the schema's ``evaluation.cnmf`` / ``evaluation.hysure`` settings, so that the base is the
    table's row. A name ``kind+p<N>`` projects the base onto the observations (N CGLS iterations,
    PSF and SRF); ``glp-hs+cnmf@<w>`` is ``(1 - w)`` GLP-HS plus ``w`` CNMF (w = 0.5 when left out),
    and ``glp-hs+cnmf+gsa@<w>,<v>`` adds GSA weighted ``v`` (GLP-HS taking ``1 - w - v``; equal
    thirds when left out), ``glp-hs+cnmf+gsa+hysure@<w>,<v>,<u>`` HySure weighted ``u``, each part
    projected first when ``+p<N>`` is given (as ``hsrdiff probe-bases`` mixes them). ``known``:
    fusions of these observations already computed, by kind (the workflow's cnmf row, which runs
    with the same settings) or projected, by name (``cnmf+p20``), (B, L, H, W), used instead of
    computing them again.
    """
    kind, consistency, weights = parse_base_name(name)
    needs_psf, needs_srf = base_operators(name)
    if needs_psf and psf is None:
        raise ValueError(f"model base '{name}' needs the observations' PSF")
    if needs_srf and srf is None:
        raise ValueError(f"model base '{name}' needs the observations' SRF")
    if kind in MEAN_BASES:
        suffix = f"+p{consistency}" if consistency else ""
        return sum(w * fusion_base(part + suffix, lr_hsi, hr_msi, psf, srf, known)
                   for part, w in zip(MEAN_BASES[kind], weights))
    def given(key: str) -> torch.Tensor:
        image = known[key].to(device=lr_hsi.device, dtype=lr_hsi.dtype)
        if image.shape != (lr_hsi.shape[0], lr_hsi.shape[1], *hr_msi.shape[-2:]):
            raise ValueError(f"the given {key} fusion has shape {tuple(image.shape)}, expected "
                             f"{(lr_hsi.shape[0], lr_hsi.shape[1], *hr_msi.shape[-2:])}")
        return image

    if known and consistency and name in known:  # already projected
        return given(name)
    if known and kind in known:
        base = given(kind)
    elif kind == "bicubic":
        base = F.interpolate(lr_hsi, size=tuple(hr_msi.shape[-2:]), mode="bicubic", align_corners=False)
    elif kind == "glp-hs":
        base = glp_hs_batch(lr_hsi, hr_msi, psf)
    else:  # gsa, cnmf, hysure: NumPy, one image at a time
        lr, msi = lr_hsi.detach().double().cpu().numpy(), hr_msi.detach().double().cpu().numpy()
        fused = np.stack([classical(kind, lr[i], msi[i], psf, None if srf is None else np.asarray(srf)).fused
                          for i in range(len(lr))])
        base = torch.from_numpy(fused).to(device=lr_hsi.device, dtype=lr_hsi.dtype)
    if consistency:
        from hsrdiff.degradation import project_onto_observations

        with torch.no_grad():
            base = project_onto_observations(base, lr_hsi, hr_msi, psf, np.asarray(srf), consistency).clamp(0, 1)
    return base


def write_scene_base(observations: str | Path, name: str, out: str | Path,
                     row_files: Mapping[str, str | Path] | None = None,
                     provenance: Mapping[str, Any] | None = None) -> np.ndarray:
    """The base ``name`` of one scene's observation file, written to ``out`` (the workflow's
    ``base`` rule: once per scene, for every patch file and network that adds to it).
    ``row_files``: the scene's fusions already written by the table's rows (``{"cnmf": path,
    "hysure": path}``, run with the settings the base uses), each used as that part."""
    from hsrdiff.files import read_fused, read_observations, write_base

    obs = read_observations(observations)
    rows = {kind: str(path) for kind, path in (row_files or {}).items()}
    known = {kind: torch.from_numpy(read_fused(path).result.fused)[None] for kind, path in rows.items()}
    lr_hsi, hr_msi = torch.from_numpy(obs.lr_hsi)[None], torch.from_numpy(obs.hr_msi)[None]
    t0 = time.perf_counter()
    try:
        base = fusion_base(name, lr_hsi, hr_msi, obs.psf, obs.srf, known)[0].numpy()
    except ValueError as err:  # an operator the file lacks, a row's file of another shape
        raise DataError(f"{observations}: {err}" + (f" ({', '.join(rows.values())})" if rows else "")) from None
    # the scene is the observation file's stem, as extract_patches matches a base to its scene
    write_base(out, base, name, Path(observations).stem, {
        "observations": str(observations), **{f"{kind}_file": path for kind, path in rows.items()},
        "seconds": time.perf_counter() - t0, **(provenance or {})})
    return base


def glp_hs(lr_hsi: np.ndarray, hr_msi: np.ndarray, psf: PSF) -> FusionResult:
    """MTF-GLP with high-pass modulation and a regression pan per HS band (module docstring)."""
    t0 = time.perf_counter()
    _check_pair(lr_hsi, hr_msi, psf.ratio)
    fused = glp_hs_batch(torch.as_tensor(np.asarray(lr_hsi, dtype=np.float32))[None],
                         torch.as_tensor(np.asarray(hr_msi, dtype=np.float32))[None], psf)[0]
    return FusionResult(fused.numpy().astype(np.float32), None, time.perf_counter() - t0)


def vca(data: np.ndarray, n_endmembers: int, rng: np.random.Generator) -> np.ndarray:
    """Vertex component analysis: ``n_endmembers`` pixels of ``data`` (L, N) at the simplex's
    vertices, found by successive projections orthogonal to those already chosen. (L, M)."""
    n_bands, n_pixels = data.shape
    m = min(n_endmembers, n_bands)
    u, _, _ = np.linalg.svd(data @ data.T / n_pixels)
    x = u[:, :m].T @ data  # (m, N) in the signal subspace
    mean = x.mean(axis=1)
    projected = x / np.maximum(mean @ x, EPS)  # projective projection onto a hyperplane
    basis = np.zeros((m, n_endmembers))
    basis[-1, 0] = 1.0
    picks = []
    for i in range(n_endmembers):
        w = rng.standard_normal(m)
        f = w - basis @ np.linalg.pinv(basis) @ w
        f /= max(np.linalg.norm(f), EPS)
        idx = int(np.argmax(np.abs(f @ projected)))
        basis[:, i] = projected[:, idx]
        picks.append(idx)
    return np.maximum(data[:, picks], EPS)


def _update_h(y, w, h, iterations):
    for _ in range(iterations):
        h *= (w.T @ y) / np.maximum(w.T @ w @ h, EPS)
    return h


def _update_wh(y, w, h, iterations, fixed_rows: int = 0):
    """Alternate W and H updates; the last ``fixed_rows`` rows of W (the sum-to-one row) stay."""
    for _ in range(iterations):
        w_new = w * (y @ h.T) / np.maximum(w @ h @ h.T, EPS)
        if fixed_rows:
            w_new[-fixed_rows:] = w[-fixed_rows:]
        w = w_new
        h *= (w.T @ y) / np.maximum(w.T @ w @ h, EPS)
    return w, h


def cnmf(lr_hsi: np.ndarray, hr_msi: np.ndarray, srf: np.ndarray, psf: PSF, n_endmembers: int = 30,
         inner_iterations: int = 200, outer_iterations: int = 2, delta: float = 0.15, seed: int = 0) -> FusionResult:
    """Fuse ``lr_hsi`` (L, h, w) and ``hr_msi`` (l, H, W) on [0, 1]; returns (L, H, W)."""
    t0 = time.perf_counter()
    _check_pair(lr_hsi, hr_msi, psf.ratio, srf)
    rng = np.random.default_rng(seed)
    n_bands, h, w = lr_hsi.shape
    _, height, width = hr_msi.shape
    srf = np.asarray(srf, dtype=np.float64)
    y_h = lr_hsi.reshape(n_bands, -1).astype(np.float64)
    y_m = hr_msi.reshape(hr_msi.shape[0], -1).astype(np.float64)
    m = n_endmembers

    def with_sum_row(mat, value):
        return np.vstack([mat, np.full((1, mat.shape[1]), value)])

    def degrade_abundances(h_m):
        maps = h_m.reshape(m, height, width)
        return np.maximum(np.asarray(spatial_degrade(maps, psf)).reshape(m, -1), EPS)

    # Initialisation: unmix the LR-HSI.
    w_h = vca(y_h, m, rng)
    h_h = np.full((m, y_h.shape[1]), 1.0 / m)
    yh_aug = with_sum_row(y_h, delta)
    wh_aug = with_sum_row(w_h, delta)
    h_h = _update_h(yh_aug, wh_aug, h_h, inner_iterations)
    wh_aug, h_h = _update_wh(yh_aug, wh_aug, h_h, inner_iterations, fixed_rows=1)

    ym_aug = with_sum_row(y_m, delta)
    h_m = np.full((m, y_m.shape[1]), 1.0 / m)
    for _ in range(outer_iterations):
        # MSI: endmembers seen through the SRF; abundances at high resolution.
        wm_aug = with_sum_row(srf @ wh_aug[:-1], delta)
        h_m = _update_h(ym_aug, wm_aug, h_m, inner_iterations)
        wm_aug, h_m = _update_wh(ym_aug, wm_aug, h_m, inner_iterations, fixed_rows=1)
        # HSI: abundances seen through the PSF; spectral endmembers.
        h_h = degrade_abundances(h_m)
        wh_aug, h_h = _update_wh(yh_aug, wh_aug, h_h, inner_iterations, fixed_rows=1)
    fused = (wh_aug[:-1] @ h_m).reshape(n_bands, height, width)
    return FusionResult(np.clip(fused, 0, 1).astype(np.float32), None, time.perf_counter() - t0)


def _otf(kernel: np.ndarray, anchor: int, height: int, width: int) -> torch.Tensor:
    """The 2-D FFT of the circular filter whose output at n is sum_a kernel[a] x[n + anchor + a]."""
    h = torch.zeros((height, width), dtype=torch.float64)
    k = torch.as_tensor(np.asarray(kernel, dtype=np.float64))
    rows = (-anchor - torch.arange(k.shape[0])) % height
    cols = (-anchor - torch.arange(k.shape[1])) % width
    h.index_put_((rows[:, None].expand_as(k), cols[None, :].expand_as(k)), k, accumulate=True)
    return torch.fft.rfft2(h).to(torch.complex64)


def hysure(lr_hsi: np.ndarray, hr_msi: np.ndarray, srf: np.ndarray, psf: PSF, subspace: int = 5,
           lambda_m: float = 10.0, lambda_phi: float = 1e-3, mu: float = 0.05, iterations: int = 200) -> FusionResult:
    """HySure (Simoes, Bioucas-Dias, Almeida and Chanussot, "A convex formulation for hyperspectral
    image superresolution via subspace-based regularization", IEEE TGRS 53(6), 2015), with the
    known ``srf`` and ``psf`` (the paper also estimates them). (L, h, w), (l, H, W) on [0, 1] ->
    (L, H, W).

    The image is E Z: E (L x ``subspace``) the leading left singular vectors of the LR-HSI, Z
    found by minimising

        1/2 |lr_hsi - E Z B M|^2 + lambda_m / 2 |hr_msi - srf E Z|^2 + lambda_phi TV(Z),

    B the PSF's blur, M the decimation, TV the vector total variation (the gradients of all of Z's
    bands under one square root per pixel), by the paper's ADMM (SALSA) splitting: V1 = Z B,
    V2 = Z, V3 = Z D_h, V4 = Z D_v, step ``mu``. As in the paper B is circular (its FFT diagonalises
    the Z step): exact for ``block`` PSFs, whose kernel stays within its block, and differing
    from ``convolve``'s reflect padding only within a kernel of the edges.
    """
    t0 = time.perf_counter()
    _check_pair(lr_hsi, hr_msi, psf.ratio, srf)
    n_bands, h, w = lr_hsi.shape
    _, height, width = hr_msi.shape
    r = psf.ratio
    y_h = torch.as_tensor(np.asarray(lr_hsi, dtype=np.float64)).reshape(n_bands, -1)
    y_m = torch.as_tensor(np.asarray(hr_msi, dtype=np.float64)).reshape(hr_msi.shape[0], -1)
    p = min(subspace, n_bands)
    e = torch.linalg.svd(y_h, full_matrices=False)[0][:, :p]  # (L, p), orthonormal
    re = torch.as_tensor(np.asarray(srf, dtype=np.float64)) @ e  # (l, p)

    # The LR pixel (i, j) is the blurred image at (r i, r j) with the blur anchored as spatial_degrade's.
    anchor = 0 if psf.mode == "block" else (psf.offset or 0) - psf.padding[0]
    otf_b = _otf(psf.kernel, anchor, height, width)
    otf_h = _otf(np.array([[1.0, -1.0]]), 0, height, width)
    otf_v = _otf(np.array([[1.0], [-1.0]]), 0, height, width)
    denominator = otf_b.abs() ** 2 + 1 + otf_h.abs() ** 2 + otf_v.abs() ** 2

    def filt(z_hat, otf):
        return torch.fft.irfft2(z_hat * otf, s=(height, width))

    def adjoint_hat(v, otf):
        return torch.fft.rfft2(v) * otf.conj()

    et_y_h = (e.T @ y_h).float()
    # V2's step is one linear map per pixel: its inverse once, in float64.
    v2_inverse = torch.linalg.inv(lambda_m * re.T @ re + mu * torch.eye(p, dtype=torch.float64))
    v2_const = (v2_inverse @ (lambda_m * (re.T @ y_m))).float().reshape(p, height, width)
    v2_gain = (mu * v2_inverse).float()

    up = torch.as_tensor(_upsample(lr_hsi, r)).reshape(n_bands, -1)
    z = (e.T @ up).float().reshape(p, height, width)
    z_hat = torch.fft.rfft2(z)
    v = [filt(z_hat, otf_b), z.clone(), filt(z_hat, otf_h), filt(z_hat, otf_v)]
    d = [torch.zeros_like(z) for _ in range(4)]
    for _ in range(iterations):
        z_hat = (adjoint_hat(v[0] + d[0], otf_b) + torch.fft.rfft2(v[1] + d[1]) + adjoint_hat(v[2] + d[2], otf_h)
                 + adjoint_hat(v[3] + d[3], otf_v)) / denominator
        z = torch.fft.irfft2(z_hat, s=(height, width))
        gz = [filt(z_hat, otf_b), z, filt(z_hat, otf_h), filt(z_hat, otf_v)]
        nu = [g - di for g, di in zip(gz, d)]
        # V1: the LR-HSI term where the decimation samples, the blurred Z elsewhere (E is orthonormal).
        v[0] = nu[0].clone()
        v[0][:, ::r, ::r] = (et_y_h.reshape(p, h, w) + mu * nu[0][:, ::r, ::r]) / (1 + mu)
        v[1] = v2_const + torch.einsum("pq,qhw->phw", v2_gain, nu[1])
        # V3, V4: the vector TV's proximal map, one shrinkage of each pixel's stacked gradients.
        norm = (nu[2] ** 2 + nu[3] ** 2).sum(0).sqrt()
        shrink = (norm - lambda_phi / mu).clamp_min(0) / norm.clamp_min(1e-30)
        v[2], v[3] = nu[2] * shrink, nu[3] * shrink
        d = [di - (g - vi) for di, g, vi in zip(d, gz, v)]
    fused = (e @ z.double().reshape(p, -1)).reshape(n_bands, height, width)
    return FusionResult(np.clip(fused.numpy(), 0, 1).astype(np.float32), None, time.perf_counter() - t0)


# The detail-injection baselines by their names (methods.DETAIL_INJECTION); all take lr_hsi, hr_msi, psf.
HYPERSHARPENING = dict(zip(DETAIL_INJECTION, (gsa, glp_hs), strict=True))


def classical(method: str, lr_hsi: np.ndarray, hr_msi: np.ndarray, psf: PSF, srf: np.ndarray,
              settings: Mapping[str, Mapping[str, Any]] | None = None) -> FusionResult:
    """A classical method by its name in ``methods.BASELINES``. ``settings``: by method name, the
    settings of those in ``WITH_SETTINGS`` (``evaluation.cnmf``, ``evaluation.hysure``); the
    schema's defaults where a key is left out."""
    if method in WITH_SETTINGS:
        from hsrdiff.config import schema_defaults

        c = {**schema_defaults("properties", "evaluation", "properties", method), **((settings or {}).get(method) or {})}
        if method == "hysure":
            return hysure(lr_hsi, hr_msi, srf, psf, **c)
        return cnmf(lr_hsi, hr_msi, srf, psf, n_endmembers=c["endmembers"], inner_iterations=c["inner_iterations"],
                    outer_iterations=c["outer_iterations"], delta=c["delta"])
    if method in HYPERSHARPENING:
        return HYPERSHARPENING[method](lr_hsi, hr_msi, psf)
    if method == "bicubic":
        return bicubic(lr_hsi, psf.ratio)
    raise ValueError(f"unknown classical method '{method}'; expected one of {', '.join(BASELINES)}")
