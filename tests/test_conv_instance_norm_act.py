"""ConvInstanceNormAct2d / ConvTransposeInstanceNormAct2d and convert(): a converted CycleGAN ResNet generator
built from torch.nn layers gives the same outputs, gradients and state_dict, in every backend that runs here."""

import copy

import pytest
import torch
from torch import nn

import ganfast
from ganfast import testing
from ganfast.nn import ConvInstanceNormAct2d, ConvTransposeInstanceNormAct2d, convert

BACKENDS = ["auto"] + testing.runnable_backends("instance_norm_act")


class ResnetBlock(nn.Module):
    """CycleGAN's residual block (pytorch-CycleGAN-and-pix2pix networks.py's layout, written here)."""

    def __init__(self, c, norm):
        super().__init__()
        self.block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm(c), nn.ReLU(True),
                                   nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm(c))

    def forward(self, x):
        return x + self.block(x)


def cyclegan_generator(ngf=4, blocks=2, norm=nn.InstanceNorm2d):
    """c7s1-ngf, d2ngf, d4ngf, R4ngf x blocks, u2ngf, ungf, c7s1-3 (Zhu et al. 2017, appendix 7.2)."""
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), norm(ngf), nn.ReLU(True)]
    for m in (1, 2):
        layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, 2, 1), norm(ngf * m * 2), nn.ReLU(True)]
    layers += [ResnetBlock(ngf * 4, norm) for _ in range(blocks)]
    for m in (4, 2):
        layers += [nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, 2, 1, output_padding=1), norm(ngf * m // 2),
                   nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    return nn.Sequential(*layers)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("norm", ["plain", "affine+running"])
def test_converted_cyclegan_generator_equals_torch_nn(backend, norm):
    torch.manual_seed(0)
    make = nn.InstanceNorm2d if norm == "plain" else (lambda c: nn.InstanceNorm2d(c, affine=True,
                                                                                   track_running_stats=True))
    ref = cyclegan_generator(norm=make).double()
    if norm != "plain":
        with torch.no_grad():
            for m in ref.modules():
                if isinstance(m, nn.InstanceNorm2d):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_()
    saved = copy.deepcopy(ref.state_dict())
    fused = convert(copy.deepcopy(ref), backend=backend)
    kinds = [type(m) for m in fused.modules()]
    assert kinds.count(ConvInstanceNormAct2d) == 3 + 2 and kinds.count(ConvTransposeInstanceNormAct2d) == 2
    assert kinds.count(nn.ReflectionPad2d) == 2 + 2 * 2  # the pads stay where they were
    # the keys of the unconverted model load into the converted one, and round-trip
    fused.load_state_dict(saved)
    reloaded = convert(cyclegan_generator(norm=make).double(), backend=backend)
    reloaded.load_state_dict(fused.state_dict())

    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    for mode in ("train", "eval"):
        ref.train(mode == "train")
        fused.train(mode == "train")
        xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
        yr, yf = ref(xr), fused(xf)
        torch.testing.assert_close(yf, yr, rtol=1e-10, atol=1e-12)
        g = torch.randn_like(yr)
        gr = torch.autograd.grad(yr, [xr, *ref.parameters()], g)
        gf = torch.autograd.grad(yf, [xf, *fused.parameters()], g)
        assert len(gr) == len(gf)
        for a, b in zip(gf, gr):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    ref_sd = ref.state_dict()
    fused_sd = fused.state_dict()
    assert len(ref_sd) == len(fused_sd)
    for v_ref, v_fused in zip(ref_sd.values(), fused_sd.values()):  # same order, same values (running stats)
        torch.testing.assert_close(v_fused, v_ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_layers_equal_their_sequential(backend):
    torch.manual_seed(1)
    layer = ConvInstanceNormAct2d(3, 5, 3, 2, 1, padding_mode="reflect", act="leaky_relu", affine=True,
                                  backend=backend).double()
    seq = nn.Sequential(layer.conv, layer.norm, nn.LeakyReLU(0.2))
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(layer(x), seq(x), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(layer(x[0]), seq(x[0]), rtol=1e-10, atol=1e-12)  # unbatched (C, H, W)
    up = ConvTransposeInstanceNormAct2d(5, 2, 4, 2, 1, backend=backend).double()
    h = torch.randn(2, 5, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(up(h), torch.relu(up.norm(up.conv(h))), rtol=1e-10, atol=1e-12)
    assert set(layer.state_dict()) == {"conv.weight", "conv.bias", "norm.weight", "norm.bias"}


def test_bf16_autocast_runs_the_fused_op():
    layer = ConvInstanceNormAct2d(3, 4, 3, padding=1, affine=True)
    x = torch.randn(2, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    want = torch.relu(layer.norm(layer.conv(x)))
    assert y.dtype == torch.bfloat16
    assert float((y.float() - want).detach().norm() / want.detach().norm()) < testing.norm_tolerance(torch.bfloat16)


def test_bad_construction():
    with pytest.raises(ValueError, match="act must be 'relu' or 'leaky_relu'; got 'tanh'"):
        ConvInstanceNormAct2d(3, 4, 3, act="tanh")
    with pytest.raises(TypeError, match="norm must be an nn.InstanceNorm2d; got BatchNorm2d"):
        ConvInstanceNormAct2d.from_modules(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    with pytest.raises(ValueError, match=r"norm.num_features \(5\) must equal conv.out_channels \(4\)"):
        ConvInstanceNormAct2d.from_modules(nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(5), nn.ReLU())
    with pytest.raises(TypeError, match="act must be an nn.LeakyReLU or nn.ReLU; got Tanh"):
        ConvInstanceNormAct2d.from_modules(nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4), nn.Tanh())
    with pytest.raises(TypeError, match="conv must be an nn.ConvTranspose2d"):
        ConvTransposeInstanceNormAct2d.from_modules(nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4), nn.ReLU())
    assert ganfast.nn.convert(nn.Sequential(nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4), nn.Tanh()))[0].__class__ \
        is nn.Conv2d  # not a fusible run: left alone
