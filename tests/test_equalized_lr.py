"""Equalized learning rate (ganfast.nn.equalized_lr) and the pixel-norm modules (ganfast.nn.PixelNorm, ...).

Issue 14's checks: the stored weights are unit-variance, the effective weight is
the stored one scaled by gain / sqrt(fan_in), and Adam's effective step is the
same in every layer whatever its fan-in (which He initialisation does not give).
"""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ganfast.nn as gnn
from ganfast.ref import bias_act_pixel_norm as pn_ref


def _seed(seed=0):
    torch.manual_seed(seed)  # equalized_lr re-draws with the global generator, as nn layers initialise


@pytest.mark.parametrize("make, fan", [
    (lambda: nn.Conv2d(64, 128, 3, padding=1), 64 * 9),
    (lambda: nn.ConvTranspose2d(96, 32, 4, stride=2, padding=1), 96 * 16),
    (lambda: nn.Conv2d(64, 128, 3, groups=4), 16 * 9),
    (lambda: nn.Linear(512, 256), 512),
])
def test_stored_weights_are_unit_variance_and_the_effective_weight_is_scaled(make, fan):
    _seed()
    layer = gnn.equalized_lr(make(), gain=math.sqrt(2))
    stored = layer.parametrizations.weight.original
    assert abs(stored.mean().item()) < 0.02 and abs(stored.std().item() - 1.0) < 0.02
    assert torch.count_nonzero(layer.bias) == 0  # ProGAN initialises biases to zero
    scale = math.sqrt(2) / math.sqrt(fan)
    assert torch.equal(layer.weight, stored * scale)  # computed at every access
    # the layer's forward uses the effective weight (float64, against the functional form written out)
    layer = layer.double()
    with torch.no_grad():
        layer.bias.normal_()
    if isinstance(layer, nn.Linear):
        x = torch.randn(3, layer.in_features, dtype=torch.float64)
        want = x @ (layer.parametrizations.weight.original * scale).T + layer.bias
    elif isinstance(layer, nn.ConvTranspose2d):
        x = torch.randn(2, 96, 5, 5, dtype=torch.float64)
        want = F.conv_transpose2d(x, layer.parametrizations.weight.original * scale, layer.bias, 2, 1)
    else:
        x = torch.randn(2, 64, 6, 6, dtype=torch.float64)
        want = F.conv2d(x, layer.parametrizations.weight.original * scale, layer.bias, layer.stride, layer.padding,
                        1, layer.groups)
    torch.testing.assert_close(layer(x), want, rtol=1e-12, atol=1e-12)


def test_adam_step_is_resolution_independent():
    """One Adam step moves every stored value by ~lr, so the effective weight moves by lr * its own scale: the
    relative step is lr in a 16-channel and a 512-channel layer alike; with He initialisation it is not."""
    lr = 1e-3

    def relative_step(layer, spread):
        opt = torch.optim.Adam(layer.parameters(), lr=lr, betas=(0.0, 0.99), eps=1e-8)
        before = layer.weight.detach().clone()
        x = torch.randn(4, layer.in_channels, 8, 8)
        layer(x).square().mean().backward()
        opt.step()
        return ((layer.weight.detach() - before).abs().mean() / spread).item()

    _seed(1)
    steps, he_steps = [], []
    for c_in in (16, 512):
        layer = gnn.equalized_lr(nn.Conv2d(c_in, 32, 3, padding=1))
        scale = math.sqrt(2) / math.sqrt(c_in * 9)
        steps.append(relative_step(layer, scale))  # the effective weight's spread is scale (stored: unit)
        he = nn.Conv2d(c_in, 32, 3, padding=1)
        nn.init.kaiming_normal_(he.weight, a=0.0, nonlinearity="relu")  # std sqrt(2 / fan_in) = scale
        he_steps.append(relative_step(he, scale))
    for s in steps:
        assert s == pytest.approx(lr, rel=1e-3)  # Adam's first step: lr * g / (|g| + eps), |.| = lr
    # He initialisation: the same absolute step lr against spreads sqrt(32) times apart
    assert he_steps[1] / he_steps[0] == pytest.approx(math.sqrt(512 / 16), rel=1e-3)


def test_gradients_reach_the_stored_weight_and_double_backward_works():
    """The scale is plain autograd: dL/dstored = scale * dL/dweight, and R1 through the layer (create_graph) works."""
    _seed(2)
    layer = gnn.equalized_lr(nn.Conv2d(3, 8, 3, padding=1)).double()
    scale = math.sqrt(2) / math.sqrt(27)
    stored = layer.parametrizations.weight.original
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    (g_w,) = torch.autograd.grad(layer(x).sum(), [stored])
    w_eff = (stored.detach() * scale).requires_grad_()
    (g_eff,) = torch.autograd.grad(F.conv2d(x, w_eff, layer.bias, 1, 1).sum(), [w_eff])
    torch.testing.assert_close(g_w, g_eff * scale, rtol=1e-12, atol=1e-12)
    # R1: |d D(x) / dx|^2, differentiated again w.r.t. the stored weight, against the functional form
    def r1(fn):
        (gx,) = torch.autograd.grad(torch.tanh(fn(x)).sum(), [x], create_graph=True)
        return gx.square().sum()
    (a,) = torch.autograd.grad(r1(layer), [stored])
    w = stored.detach().clone().requires_grad_()
    (b,) = torch.autograd.grad(r1(lambda t: F.conv2d(t, w * scale, layer.bias, 1, 1)), [w])
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_lr_multiplier_scales_the_stored_values_and_the_bias():
    """StyleGAN's mapping layers: stored N(0, 1/lrm^2), effective N(0, gain^2/fan_in); bias stored / lrm."""
    _seed(3)
    layer = gnn.equalized_lr(nn.Linear(256, 512), gain=1.0, lr_multiplier=0.01)
    stored = layer.parametrizations.weight.original
    assert stored.std().item() == pytest.approx(100.0, rel=0.02)
    assert layer.weight.std().item() == pytest.approx(1 / 16, rel=0.02)
    with torch.no_grad():
        layer.parametrizations.bias.original.fill_(3.0)
    assert torch.allclose(layer.bias, torch.full((512,), 0.03))


def test_state_dict_round_trip_and_deepcopy():
    _seed(4)
    a = gnn.equalized_lr(nn.Conv2d(4, 6, 3))
    keys = set(a.state_dict())
    assert keys == {"bias", "parametrizations.weight.original"}
    _seed(5)
    b = gnn.equalized_lr(nn.Conv2d(4, 6, 3))
    assert not torch.equal(a.weight, b.weight)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 4, 5, 5)
    assert torch.equal(a(x), b(x))
    c = copy.deepcopy(a)  # EMA copies of a generator deep-copy it
    assert torch.equal(c(x), a(x))


def test_init_false_keeps_the_values():
    layer = nn.Linear(8, 4)
    before = layer.weight.detach().clone()
    gnn.equalized_lr(layer, init=False)
    assert torch.equal(layer.parametrizations.weight.original, before)


@pytest.mark.parametrize("call, exc, words", [
    (lambda: gnn.equalized_lr(nn.ReLU()), TypeError, "module: expected a Linear, Conv or ConvTranspose"),
    (lambda: gnn.equalized_lr(nn.Linear(2, 2), gain=0.0), ValueError, "gain"),
    (lambda: gnn.equalized_lr(nn.Linear(2, 2), lr_multiplier=-1.0), ValueError, "lr_multiplier"),
    (lambda: gnn.equalized_lr(nn.Linear(2, 2), gain="2"), TypeError, "gain"),
    (lambda: gnn.equalized_lr(gnn.equalized_lr(nn.Linear(2, 2))), ValueError, "already has a parametrization"),
    (lambda: gnn.equalized_lr(nn.Linear(2, 2), init="no"), TypeError, "init must be a bool; got str"),
])
def test_bad_arguments(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


# -- the pixel-norm modules ---------------------------------------------------------------------------


def test_pixel_norm_module_matches_its_formula():
    x = torch.randn(3, 5, 4, 2, dtype=torch.float64)
    want = x / torch.sqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)
    torch.testing.assert_close(gnn.PixelNorm()(x), want, rtol=1e-12, atol=1e-12)
    z = torch.randn(7, 16, dtype=torch.float64)  # ProGAN normalises the latent this way
    torch.testing.assert_close(gnn.PixelNorm(eps=1e-4)(z), z / torch.sqrt(z.square().mean(1, keepdim=True) + 1e-4))
    assert list(gnn.PixelNorm().parameters()) == [] and repr(gnn.PixelNorm(eps=1e-4)) == "PixelNorm(eps=0.0001)"


def test_bias_leaky_relu_pixel_norm_module_trains_its_bias():
    layer = gnn.BiasLeakyReLUPixelNorm(6).double()
    assert torch.count_nonzero(layer.bias) == 0 and layer.bias.requires_grad
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 6, 3, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 6, 3, 3, dtype=torch.float64)
    y = layer(x)
    b = layer.bias.detach().clone().requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    want = pn_ref.bias_act_pixel_norm(x2, b, 0.2, 1e-8)
    torch.testing.assert_close(y, want, rtol=1e-12, atol=1e-12)
    y.backward(g)
    want.backward(g)
    torch.testing.assert_close(layer.bias.grad, b.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-10, atol=1e-12)
    assert gnn.BiasLeakyReLUPixelNorm(4, bias=False).bias is None
    with pytest.raises(ValueError, match="negative_slope"):
        gnn.BiasLeakyReLUPixelNorm(4, negative_slope=1.5)
    with pytest.raises(ValueError, match="channels"):
        gnn.BiasLeakyReLUPixelNorm(0)
    with pytest.raises(ValueError, match=r"x: BiasLeakyReLUPixelNorm\(channels=8\) expects 8 channels in dim 1; "
                                         r"got shape \(2, 7, 4, 4\)"):
        gnn.BiasLeakyReLUPixelNorm(8)(torch.randn(2, 7, 4, 4))
