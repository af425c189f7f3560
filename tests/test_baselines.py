"""The CNMF baseline: VCA finds pure pixels; on a linear-mixing scene CNMF far outdoes bicubic."""

import h5py
import numpy as np
import pytest
from scipy import ndimage

from hsrdiff.baselines import cnmf, vca
from hsrdiff.degradation import make_psf, spatial_degrade, spectral_degrade
from hsrdiff.baselines import bicubic
from hsrdiff.metrics import psnr, sam


@pytest.fixture(scope="module")
def mixing_scene():
    """4 smooth endmembers mixed by smooth abundances on 24 bands, 48x48, with pure regions."""
    rng = np.random.default_rng(0)
    wl = np.linspace(0, 1, 24)
    endmembers = np.stack([0.2 + 0.6 * np.exp(-0.5 * ((wl - c) / 0.2) ** 2) for c in (0.1, 0.4, 0.7, 1.0)], axis=1)
    logits = np.stack([ndimage.gaussian_filter(rng.standard_normal((48, 48)), 1.5) * 30 for _ in range(4)])
    abundances = np.exp(logits) / np.exp(logits).sum(0)
    gt = np.einsum("bk,khw->bhw", endmembers, abundances).astype(np.float32)
    srf = np.stack([np.exp(-0.5 * ((wl - c) / 0.15) ** 2) for c in (0.2, 0.5, 0.8)])
    srf /= srf.sum(1, keepdims=True)
    psf = make_psf({"mode": "block"}, 4)
    return gt, spatial_degrade(gt, psf), spectral_degrade(gt, srf), srf, psf, endmembers


def test_vca_picks_the_purest_pixels(mixing_scene):
    gt, *_, endmembers = mixing_scene
    found = vca(gt.reshape(24, -1).astype(np.float64), 4, np.random.default_rng(1))
    # each true endmember is close (in angle) to one found column
    cos = (endmembers / np.linalg.norm(endmembers, axis=0)).T @ (found / np.linalg.norm(found, axis=0))
    assert np.degrees(np.arccos(np.clip(cos.max(axis=1), -1, 1))).max() < 10  # the scene has no perfectly pure pixel


def test_cnmf_beats_bicubic_on_a_linear_mixture(mixing_scene):
    gt, lr, msi, srf, psf, _ = mixing_scene
    fused = cnmf(lr, msi, srf, psf, n_endmembers=4, inner_iterations=150, outer_iterations=2)
    assert fused.fused.shape == gt.shape and fused.fused.dtype == np.float32
    floor = bicubic(lr, 4).fused
    assert psnr(fused.fused, gt) > psnr(floor, gt) + 5, (psnr(fused.fused, gt), psnr(floor, gt))
    assert sam(fused.fused, gt) < sam(floor, gt)


@pytest.mark.parametrize("psf_settings", [{"mode": "block"}, {"mode": "convolve"}])
def test_glp_hs_is_exact_when_every_band_is_a_multiple_of_one_texture(psf_settings):
    """Each HS band c_i T: the regression pan of band i is c_i T and its low-pass is exactly what
    the LR-HSI upsampled holds, so high-pass modulation restores c_i T to rounding."""
    from hsrdiff.baselines import glp_hs

    rng = np.random.default_rng(0)
    texture = 0.2 + 0.6 * ndimage.gaussian_filter(rng.random((64, 64)), 1.0)
    texture = (texture - texture.min()) / (texture.max() - texture.min()) * 0.6 + 0.2
    gt = (np.linspace(0.5, 1.0, 12)[:, None, None] * texture).astype(np.float32)
    srf = np.random.default_rng(1).random((3, 12))
    srf /= srf.sum(1, keepdims=True)
    psf = make_psf(psf_settings, 4)
    lr, msi = spatial_degrade(gt, psf), spectral_degrade(gt, srf)
    fused = glp_hs(lr, msi, psf).fused
    assert np.abs(fused - gt).max() < 1e-4
    assert psnr(bicubic(lr, 4).fused, gt) < 35


@pytest.mark.parametrize("method", ["gsa", "glp-hs"])
def test_detail_injection_baselines_beat_bicubic_on_a_linear_mixture(mixing_scene, method):
    from hsrdiff.baselines import HYPERSHARPENING

    gt, lr, msi, srf, psf, _ = mixing_scene
    result = HYPERSHARPENING[method](lr, msi, psf)
    assert result.fused.shape == gt.shape and result.fused.dtype == np.float32 and result.std is None
    assert 0 <= result.fused.min() and result.fused.max() <= 1
    floor = bicubic(lr, 4).fused
    assert psnr(result.fused, gt) > psnr(floor, gt) + 3, (psnr(result.fused, gt), psnr(floor, gt))
    assert sam(result.fused, gt) < sam(floor, gt)
    with pytest.raises(ValueError, match="must be \\(bands, H, W\\) with H, W = ratio 4"):
        HYPERSHARPENING[method](lr, msi[:, :40], psf)


def test_a_network_base_names_the_operator_it_lacks(mixing_scene):
    import torch

    from hsrdiff.baselines import fusion_base

    _, lr, msi, srf, psf, _ = mixing_scene
    lr_t, msi_t = torch.from_numpy(lr)[None], torch.from_numpy(msi)[None]
    with pytest.raises(ValueError, match="needs the observations' PSF"):
        fusion_base("glp-hs", lr_t, msi_t, None)
    with pytest.raises(ValueError, match="needs the observations' SRF"):
        fusion_base("cnmf", lr_t, msi_t, psf)
    with pytest.raises(ValueError, match="unknown model base 'sfim'"):
        fusion_base("sfim", lr_t, msi_t, psf, srf)
    base = fusion_base("cnmf", torch.cat([lr_t, lr_t]), torch.cat([msi_t, msi_t]), psf, srf)
    assert base.shape == (2, lr.shape[0], *msi.shape[-2:]) and base.dtype == lr_t.dtype
    torch.testing.assert_close(base[0], base[1])  # each image of a batch fused on its own


def test_a_projected_base_reproduces_the_observations(mixing_scene):
    import torch

    from hsrdiff.bases import base_name, parse_base_name
    from hsrdiff.baselines import fusion_base

    _, lr, msi, srf, psf, _ = mixing_scene
    assert base_name("glp-hs") == "glp-hs" and base_name("cnmf", 20) == "cnmf+p20"
    assert parse_base_name("cnmf+p20") == ("cnmf", 20, ()) and parse_base_name("bicubic") == ("bicubic", 0, ())
    with pytest.raises(ValueError, match="unknown model base 'glp-hs\\+px'"):
        parse_base_name("glp-hs+px")
    lr_t, msi_t = torch.from_numpy(lr)[None], torch.from_numpy(msi)[None]
    with pytest.raises(ValueError, match="needs the observations' SRF"):
        fusion_base("glp-hs+p5", lr_t, msi_t, psf)

    def misfit(x):
        return float((spatial_degrade(x[0].numpy(), psf) - lr).std() + (spectral_degrade(x[0].numpy(), srf) - msi).std())

    for kind in ("bicubic", "cnmf"):  # GLP-HS already reproduces this scene's observations
        plain, projected = (fusion_base(name, lr_t, msi_t, psf, srf) for name in (kind, base_name(kind, 50)))
        assert misfit(projected) < 0.05 * misfit(plain), (kind, misfit(projected), misfit(plain))


def test_the_mean_base_averages_its_projected_parts(mixing_scene):
    """glp-hs+cnmf is the mean of GLP-HS and CNMF, each projected first (as probe-bases mixes
    them), so it needs the SRF even unprojected and is a valid image of the scene; @<w> weighs
    CNMF by w, and its name round-trips through the config's three keys."""
    import torch

    from hsrdiff.bases import base_name, base_operators, parse_base_name
    from hsrdiff.baselines import fusion_base

    gt, lr, msi, srf, psf, _ = mixing_scene
    lr_t, msi_t = torch.from_numpy(lr)[None], torch.from_numpy(msi)[None]
    assert parse_base_name("glp-hs+cnmf+p20") == ("glp-hs+cnmf", 20, (0.5, 0.5))
    assert parse_base_name("glp-hs+cnmf@0.75+p20") == ("glp-hs+cnmf", 20, (0.25, 0.75))
    assert base_name("glp-hs+cnmf", 20, 0.75) == "glp-hs+cnmf@0.75+p20" and base_name("glp-hs+cnmf", 0, 0.5) == "glp-hs+cnmf"
    for bad in ("glp-hs@0.75", "glp-hs+cnmf@1.5", "glp-hs+cnmf@x+p20", "glp-hs+cnmf@0.5,0.2",
                "glp-hs+cnmf+gsa@0.5", "glp-hs+cnmf+gsa@0.7,0.4"):
        with pytest.raises(ValueError, match="unknown model base"):
            parse_base_name(bad)
    assert base_name("glp-hs", 20, 0.75) == "glp-hs+p20"  # an overlay's single base ignores the weight
    assert base_operators("glp-hs+cnmf") == (True, True) and base_operators("glp-hs") == (True, False)
    with pytest.raises(ValueError, match="needs the observations' SRF"):
        fusion_base("glp-hs+cnmf", lr_t, msi_t, psf)
    parts = [fusion_base(name, lr_t, msi_t, psf, srf) for name in ("glp-hs+p10", "cnmf+p10")]
    mean = fusion_base("glp-hs+cnmf+p10", lr_t, msi_t, psf, srf)
    assert not torch.allclose(parts[0], parts[1], atol=1e-3)
    assert torch.allclose(mean, (parts[0] + parts[1]) / 2, atol=1e-6)
    errors = [float((x[0].numpy() - gt).std()) for x in (*parts, mean)]
    assert errors[2] < max(errors[:2]), errors  # an average is never worse than the worse part
    mix = fusion_base("glp-hs+cnmf@0.75+p10", lr_t, msi_t, psf, srf)
    assert torch.allclose(mix, 0.25 * parts[0] + 0.75 * parts[1], atol=1e-6)
    assert torch.allclose(fusion_base("glp-hs+cnmf@1+p10", lr_t, msi_t, psf, srf), parts[1], atol=1e-6)


def test_a_three_part_mean_base_weighs_gsa_too(mixing_scene):
    """glp-hs+cnmf+gsa: base_weight lists CNMF's and GSA's weights (GLP-HS takes the rest), equal
    thirds when left out; its name round-trips, and a weight count that does not match the parts
    is refused naming them."""
    import torch

    from hsrdiff.bases import base_name, base_operators, parse_base_name
    from hsrdiff.baselines import classical, fusion_base

    _, lr, msi, srf, psf, _ = mixing_scene
    lr_t, msi_t = torch.from_numpy(lr)[None], torch.from_numpy(msi)[None]
    assert base_name("glp-hs+cnmf+gsa", 20, [0.5, 0.2]) == "glp-hs+cnmf+gsa@0.5,0.2+p20"
    assert base_name("glp-hs+cnmf+gsa", 20, None) == "glp-hs+cnmf+gsa+p20"
    spec = parse_base_name("glp-hs+cnmf+gsa@0.5,0.2+p20")
    assert spec.kind == "glp-hs+cnmf+gsa" and spec.consistency == 20
    assert spec.weights == pytest.approx((0.3, 0.5, 0.2))
    assert parse_base_name("glp-hs+cnmf+gsa").weights == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    with pytest.raises(ValueError, match="weights of cnmf, gsa"):
        base_name("glp-hs+cnmf+gsa", 0, 0.5)
    assert base_operators("gsa") == (True, False) and base_operators("glp-hs+cnmf+gsa") == (True, True)
    gsa = fusion_base("gsa", lr_t, msi_t, psf)
    torch.testing.assert_close(gsa[0], torch.from_numpy(classical("gsa", lr, msi, psf, srf).fused).to(gsa.dtype))
    parts = [fusion_base(name, lr_t, msi_t, psf, srf) for name in ("glp-hs+p10", "cnmf+p10", "gsa+p10")]
    mix = fusion_base("glp-hs+cnmf+gsa@0.5,0.2+p10", lr_t, msi_t, psf, srf)
    assert torch.allclose(mix, 0.3 * parts[0] + 0.5 * parts[1] + 0.2 * parts[2], atol=1e-6)


def test_a_scene_base_takes_the_cnmf_row_as_its_cnmf_part(tmp_path, mixing_scene):
    """The base rule reuses the scene's cnmf row: the file's CNMF is the part mixed in (not a CNMF
    computed again), the observation file's stem names the scene, and a base that needs an operator
    the observation file lacks is refused naming the file."""
    import torch

    from hsrdiff.baselines import fusion_base, write_scene_base
    from hsrdiff.errors import DataError
    from hsrdiff.files import FusionResult, read_base, write_fused, write_observations

    gt, lr, msi, srf, psf, _ = mixing_scene
    write_observations(tmp_path / "scene_a.h5", gt, lr, msi, psf, srf, np.arange(gt.shape[0], dtype=float), "", {})
    row = np.clip(gt + 0.01, 0, 1).astype(np.float32)  # a stand-in for the cnmf row, distinguishable from CNMF
    write_fused(tmp_path / "cnmf.h5", FusionResult(row, None, 0.0), None, {"method": "cnmf"})
    base = write_scene_base(tmp_path / "scene_a.h5", "glp-hs+cnmf@0.75+p5", tmp_path / "base.h5", {"cnmf": tmp_path / "cnmf.h5"})
    held = read_base(tmp_path / "base.h5", "glp-hs+cnmf@0.75+p5")
    assert held.scene == "scene_a" and np.array_equal(held.base, base)
    lr_t, msi_t = torch.from_numpy(lr)[None], torch.from_numpy(msi)[None]
    expected = fusion_base("glp-hs+cnmf@0.75+p5", lr_t, msi_t, psf, srf, {"cnmf": torch.from_numpy(row)[None]})[0].numpy()
    np.testing.assert_allclose(base, expected, atol=1e-6)
    assert np.abs(base - fusion_base("glp-hs+cnmf@0.75+p5", lr_t, msi_t, psf, srf)[0].numpy()).max() > 1e-3
    with h5py.File(tmp_path / "scene_a.h5", "a") as fh:
        del fh["srf"]
    with pytest.raises(DataError, match="scene_a.h5: model base 'cnmf' needs the observations' PSF"):
        write_scene_base(tmp_path / "scene_a.h5", "cnmf", tmp_path / "cnmf_base.h5")


@pytest.mark.parametrize("mode,ratio,size,offset", [("block", 8, 8, None), ("convolve", 4, 8, None),
                                                    ("convolve", 3, 9, None), ("convolve", 4, 7, 1)])
def test_hysure_blur_is_the_degradation_made_circular(mode, ratio, size, offset):
    """HySure's FFT blur, sampled at (ratio i, ratio j), is spatial_degrade: everywhere for a block
    PSF, away from the reflect-padded edges for a convolved one."""
    import torch

    from hsrdiff.baselines import _otf
    from hsrdiff.degradation import PSF, gaussian_kernel

    psf = PSF(gaussian_kernel(size, 1.5), ratio, mode, offset)
    image = np.random.default_rng(0).random((2, 48, 48))
    anchor = 0 if mode == "block" else (offset or 0) - psf.padding[0]
    blurred = torch.fft.irfft2(torch.fft.rfft2(torch.as_tensor(image)) * _otf(psf.kernel, anchor, 48, 48).to(torch.complex128),
                               s=(48, 48)).numpy()[:, ::ratio, ::ratio]
    expected = np.asarray(spatial_degrade(image, psf))
    m = psf.margin
    inner = (slice(None), slice(m, blurred.shape[1] - m), slice(m, blurred.shape[2] - m))
    np.testing.assert_allclose(blurred[inner], expected[inner], atol=1e-12)
    if mode == "block":
        assert m == 0


def test_hysure_recovers_a_scene_its_msi_determines():
    """Three endmembers seen by three MSI bands: in the LR-HSI's 3-D subspace the MSI fixes every
    pixel, so without the TV HySure returns the scene itself."""
    from hsrdiff.baselines import hysure

    rng = np.random.default_rng(0)
    wl = np.linspace(0, 1, 16)
    endmembers = np.stack([0.2 + 0.6 * np.exp(-0.5 * ((wl - c) / 0.2) ** 2) for c in (0.1, 0.5, 0.9)], axis=1)
    abundances = rng.dirichlet(np.ones(3), size=(32, 32)).transpose(2, 0, 1)
    gt = np.einsum("bk,khw->bhw", endmembers, abundances).astype(np.float32)
    srf = np.stack([np.exp(-0.5 * ((wl - c) / 0.15) ** 2) for c in (0.1, 0.5, 0.9)])
    srf /= srf.sum(1, keepdims=True)
    psf = make_psf({"mode": "block"}, 4)
    lr, msi = spatial_degrade(gt, psf), spectral_degrade(gt, srf)
    fused = hysure(lr, msi, srf, psf, subspace=3, lambda_phi=0.0, iterations=300).fused
    assert psnr(fused, gt) > 60, psnr(fused, gt)


def test_hysure_beats_bicubic_and_fits_the_observations(mixing_scene):
    from hsrdiff.baselines import classical

    gt, lr, msi, srf, psf, _ = mixing_scene
    result = classical("hysure", lr, msi, psf, srf, {"hysure": {"subspace": 4, "iterations": 100}})
    assert result.fused.shape == gt.shape and result.fused.dtype == np.float32 and result.std is None
    floor = bicubic(lr, 4).fused
    assert psnr(result.fused, gt) > psnr(floor, gt) + 5, (psnr(result.fused, gt), psnr(floor, gt))
    assert sam(result.fused, gt) < sam(floor, gt)
    # both observations reproduced to within a small fraction of their own level
    assert np.abs(spatial_degrade(result.fused, psf) - lr).mean() < 0.01 * lr.mean()
    assert np.abs(spectral_degrade(result.fused, srf) - msi).mean() < 0.01 * msi.mean()
    with pytest.raises(TypeError):
        classical("hysure", lr, msi, psf, srf, {"hysure": {"endmembers": 4}})
    with pytest.raises(ValueError, match=r"srf has shape \(3, 23\), expected \(MSI bands 3, HSI bands 24\)"):
        classical("hysure", lr, msi, psf, srf[:, 1:])


def test_a_four_part_mean_base_weighs_hysure_too(mixing_scene):
    """glp-hs+cnmf+gsa+hysure: HySure as a fourth part (base_weight [CNMF's, GSA's, HySure's]); it
    needs the SRF, and the mean is the weighted sum of the projected parts."""
    import torch

    from hsrdiff.bases import base_name, base_operators, parse_base_name
    from hsrdiff.baselines import classical, fusion_base

    _, lr, msi, srf, psf, _ = mixing_scene
    lr_t, msi_t = torch.from_numpy(lr)[None], torch.from_numpy(msi)[None]
    name = base_name("glp-hs+cnmf+gsa+hysure", 10, [0.4, 0.1, 0.2])
    assert name == "glp-hs+cnmf+gsa+hysure@0.4,0.1,0.2+p10"
    assert parse_base_name(name).weights == pytest.approx((0.3, 0.4, 0.1, 0.2))
    assert base_operators("hysure") == (True, True)
    with pytest.raises(ValueError, match="needs the observations' SRF"):
        fusion_base("hysure", lr_t, msi_t, psf)
    hysure = fusion_base("hysure", lr_t, msi_t, psf, srf)
    torch.testing.assert_close(hysure[0], torch.from_numpy(classical("hysure", lr, msi, psf, srf).fused).to(hysure.dtype))
    parts = [fusion_base(part + "+p10", lr_t, msi_t, psf, srf) for part in ("glp-hs", "cnmf", "gsa", "hysure")]
    mix = fusion_base(name, lr_t, msi_t, psf, srf)
    assert torch.allclose(mix, sum(w * p for w, p in zip((0.3, 0.4, 0.1, 0.2), parts)), atol=1e-6)


def test_every_baseline_name_fuses_and_a_real_pair_passes_each_methods_settings(mixing_scene):
    from hsrdiff.baselines import classical
    from hsrdiff.methods import BASELINES
    from hsrdiff.realpair import fuse_with

    gt, lr, msi, srf, psf, _ = mixing_scene
    settings = {"cnmf": {"endmembers": 4, "inner_iterations": 20, "outer_iterations": 1},
                "hysure": {"subspace": 4, "iterations": 10}}
    fused = {method: fuse_with(method, lr, msi, psf, srf, settings=settings).fused for method in BASELINES}
    for method in BASELINES:
        assert fused[method].shape == gt.shape, method
        np.testing.assert_array_equal(fused[method], classical(method, lr, msi, psf, srf, settings).fused, err_msg=method)
    # HySure's settings reach it through the real-pair path, not only CNMF's: 10 iterations differ from 11.
    eleven = fuse_with("hysure", lr, msi, psf, srf, settings={"hysure": {**settings["hysure"], "iterations": 11}}).fused
    assert np.abs(fused["hysure"] - eleven).max() > 0
