"""Networks: shapes and gradients of every architecture, padding, window locality, encode-once."""

import pytest
import torch

from hsrdiff.models import ARCHITECTURES, ModelConfig, build_model
from hsrdiff.models.blocks import WindowAttention, WindowCrossAttention


def tiny(architecture, hsi_bands, msi_bands):
    return build_model(ModelConfig(hsi_bands, msi_bands, architecture=architecture, channels=8, depth=2, heads=2, window=4))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("bands,msi_bands,ratio,size", [(31, 3, 4, (12, 20)), (103, 4, 4, (16, 16)), (110, 8, 2, (10, 14))])
def test_shapes_and_gradients(architecture, bands, msi_bands, ratio, size):
    torch.manual_seed(0)
    model = tiny(architecture, bands, msi_bands)
    h, w = size
    lr_hsi = torch.randn(2, bands, h // ratio, w // ratio)
    hr_msi = torch.randn(2, msi_bands, h, w)
    x_t = torch.randn(2, bands, h, w, requires_grad=True)
    out = model(x_t, torch.rand(2), lr_hsi, hr_msi)
    assert out.shape == (2, bands, h, w)
    # the residual branch starts at zero: the untrained network returns the upsampled LR-HSI
    up = torch.nn.functional.interpolate(lr_hsi, size=(h, w), mode="bicubic", align_corners=False)
    torch.testing.assert_close(out, up)
    (out - up.roll(1, -1)).abs().mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert grads, "no parameter receives a gradient"
    # after one optimisation step every parameter of the network is reachable
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.step()
    opt.zero_grad()
    model(x_t, torch.rand(2), lr_hsi, hr_msi).square().mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None]
    assert not dead, dead


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_encode_once_denoise_many_equals_forward(architecture):
    torch.manual_seed(1)
    model = tiny(architecture, 6, 3).eval()
    for p in model.parameters():  # a non-trivial network
        torch.nn.init.normal_(p, std=0.05)
    lr_hsi, hr_msi = torch.randn(1, 6, 3, 5), torch.randn(1, 3, 9, 15)
    cond = model.encode(lr_hsi, hr_msi)
    for level in (0.1, 0.9):
        x_t, sg = torch.randn(1, 6, 9, 15), torch.tensor([level])
        torch.testing.assert_close(model.denoise(x_t, sg, cond), model(x_t, sg, lr_hsi, hr_msi))
    assert cond.repeat(3).inputs.shape[0] == 3


def test_window_attention_stays_inside_windows():
    torch.manual_seed(2)
    attn = WindowAttention(8, 2, window=4, shift=False).eval()
    x = torch.randn(1, 8, 8, 8)
    y = x.clone()
    y[..., 6, 6] += 10.0  # a pixel of the bottom-right window
    diff = (attn(y) - attn(x)).abs().sum(1)[0]
    assert diff[:4, :].max() == 0 and diff[:, :4].max() == 0
    assert diff[4:, 4:].max() > 0


def test_shifted_windows_mix_neighbours_but_not_wrapped_borders():
    torch.manual_seed(3)
    attn = WindowAttention(8, 2, window=4, shift=True).eval()
    x = torch.randn(1, 8, 8, 8)
    y = x.clone()
    y[..., 3, 3] += 10.0  # the shifted window covering rows/cols 2..5 holds it
    diff = (attn(y) - attn(x)).abs().sum(1)[0]
    assert diff[2:6, 2:6].min() > 0
    assert diff[6:, :].max() == 0 and diff[:, 6:].max() == 0 and diff[:2, :].max() == 0
    # a pixel at the bottom edge must not reach the top edge through the cyclic shift
    y = x.clone()
    y[..., 7, 7] += 10.0
    diff = (attn(y) - attn(x)).abs().sum(1)[0]
    assert diff[:2, :].max() == 0 and diff[:, :2].max() == 0
    assert len(attn._mask_cache) == 1
    attn(torch.randn(1, 8, 8, 12))
    assert len(attn._mask_cache) == 2  # one mask per input size


def test_cross_attention_reads_only_its_window_of_the_context():
    torch.manual_seed(4)
    cross = WindowCrossAttention(8, 2, window=4).eval()
    x, ctx = torch.randn(1, 8, 8, 8), torch.randn(1, 8, 8, 8)
    ctx2 = ctx.clone()
    ctx2[..., 0, 0] += 10.0
    diff = (cross(x, ctx2) - cross(x, ctx)).abs().sum(1)[0]
    assert diff[:4, :4].min() > 0 and diff[4:, :].max() == 0 and diff[:, 4:].max() == 0


def test_second_half_is_a_proper_subset():
    model = tiny("cdformer", 6, 3)
    half = {id(p) for p in model.second_half_parameters()}
    every = {id(p) for p in model.parameters()}
    assert half < every and len(half) > 0
    assert id(model.reconstruct.weight) in half and id(model.dn_embed.weight) not in half


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown model architecture 'transformer'"):
        build_model(ModelConfig(6, 3, architecture="transformer"))


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(5)
    model = tiny("cdformer", 6, 3)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    args = (torch.randn(2, 6, 8, 8), torch.rand(2), torch.randn(2, 6, 4, 4), torch.randn(2, 3, 8, 8))
    model(*args).square().mean().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.activation_checkpointing = True
    model(*args).square().mean().backward()
    for a, p in zip(plain, model.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_residual_preconditioning_passes_a_noiseless_input_through_and_shapes_by_noise_level():
    torch.manual_seed(0)
    model = build_model(ModelConfig(6, 3, channels=8, depth=2, heads=2, window=4, preconditioning="residual",
                                    residual_std=0.1)).eval()
    for p in model.parameters():  # any weights: the skip, not the network, carries x_t at zero noise
        torch.nn.init.normal_(p, std=0.1)
    lr_hsi, hr_msi = torch.rand(1, 6, 4, 4) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    x0 = torch.rand(1, 6, 16, 16) * 2 - 1
    with torch.no_grad():
        cond = model.encode(lr_hsi, hr_msi)
        torch.testing.assert_close(model.denoise(x0, torch.ones(1), cond), x0)
        # pure noise: the estimate does not depend on the noise sample's scale-free content via the skip
        a = model.denoise(torch.randn(1, 6, 16, 16), torch.zeros(1), cond)
        assert torch.isfinite(a).all()
        # a small noise level: x0_hat is close to x_t (the skip dominates), unlike without preconditioning
        x_t = 0.9999 * x0 + (1 - 0.9999**2) ** 0.5 * torch.randn(1, 6, 16, 16)
        assert (model.denoise(x_t, torch.tensor([0.9999]), cond) - x0).abs().mean() < 0.1


def test_residual_diffusion_variable_round_trips_and_scales_the_output():
    torch.manual_seed(4)
    model = build_model(ModelConfig(6, 3, channels=8, depth=2, heads=2, window=4, diffuse="residual", residual_scale=0.05)).eval()
    x0, base = torch.rand(2, 6, 8, 8) * 2 - 1, torch.rand(2, 6, 8, 8) * 2 - 1
    y = model.to_diffusion(x0, base)
    torch.testing.assert_close(y, (x0 - base) / 0.05)
    torch.testing.assert_close(model.from_diffusion(y, base), x0)
    lr_hsi, hr_msi = torch.randn(1, 6, 2, 2), torch.randn(1, 3, 8, 8)
    cond = model.encode(lr_hsi, hr_msi)
    torch.nn.init.constant_(model.reconstruct.bias, 2.0)
    # x0_hat = base + scale * F(x_t): F = 2 everywhere puts x0_hat 0.1 above the (bicubic) base
    torch.testing.assert_close(model.denoise(torch.randn(1, 6, 8, 8), torch.tensor([0.5]), cond), cond.lr_up + 0.1)
    image = build_model(ModelConfig(6, 3, channels=8, depth=2, heads=2, window=4))
    torch.testing.assert_close(image.to_diffusion(x0, base), x0)


def test_preconditioned_residual_diffusion_passes_a_noiseless_residual_through():
    """diffuse residual + preconditioning residual: EDM's skip in the residual's own space (unit
    spread, u = 0), so at low noise the estimate is x_t's residual whatever the network says, and
    at pure noise it is the network's alone."""
    torch.manual_seed(5)
    scale = 0.02
    model = build_model(ModelConfig(6, 3, channels=8, depth=2, heads=2, window=4, diffuse="residual",
                                    preconditioning="residual", residual_scale=scale)).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    lr_hsi, hr_msi = torch.rand(1, 6, 2, 2) * 2 - 1, torch.rand(1, 3, 8, 8) * 2 - 1
    cond = model.encode(lr_hsi, hr_msi)
    y0 = torch.randn(1, 6, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model.denoise(y0, torch.ones(1), cond), cond.lr_up + scale * y0)
        # pure noise: c_skip = 0 and c_out = 1, the network's residual alone
        noise = torch.randn(1, 6, 8, 8)
        torch.testing.assert_close(model.denoise(noise, torch.zeros(1), cond),
                                   cond.lr_up + scale * model._residual(noise, torch.zeros(1), cond))
        # in between: g x_t + s F(x_t) (d = 1 on the variance-preserving path)
        g = torch.tensor([0.6])
        x_t = 0.6 * y0 + 0.8 * noise
        expected = cond.lr_up + scale * (0.6 * x_t + 0.8 * model._residual(x_t, g, cond))
        torch.testing.assert_close(model.denoise(x_t, g, cond), expected)


@pytest.mark.parametrize("bad,match", [({"diffuse": "latent"}, "unknown model.diffuse"),
                                       ({"residual_scale": 0.0}, "positive")])
def test_residual_diffusion_settings_are_checked(bad, match):
    with pytest.raises(ValueError, match=match):
        build_model(ModelConfig(6, 3, channels=8, depth=2, heads=2, window=4, **bad))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_a_self_conditioned_network_reads_its_previous_estimate(architecture):
    """model.self_condition: no previous estimate is the same as one equal to the base (a zero
    residual); another estimate changes the output; a network trained without it refuses one."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(6, 3, architecture=architecture, channels=8, depth=2, heads=2, window=4,
                                    self_condition=True)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    lr_hsi, hr_msi = torch.rand(1, 6, 3, 5) * 2 - 1, torch.rand(1, 3, 12, 20) * 2 - 1
    x_t, level = torch.randn(1, 6, 12, 20), torch.tensor([0.5])
    cond = model.encode(lr_hsi, hr_msi)
    first = model.denoise(x_t, level, cond)
    base = cond.lr_up[..., :12, :20]
    torch.testing.assert_close(model.denoise(x_t, level, cond, base), first)
    second = model.denoise(x_t, level, cond, first)
    assert second.shape == first.shape and (second - first).abs().max() > 1e-4
    plain = tiny(architecture, 6, 3)
    with pytest.raises(ValueError, match="not trained with self-conditioning"):
        plain.denoise(x_t, level, plain.encode(lr_hsi, hr_msi), first)
    assert ModelConfig.from_dict({"hsi_bands": 6, "msi_bands": 3}).self_condition is False
