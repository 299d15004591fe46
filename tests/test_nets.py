"""Tests for ganfast.models.nets: shapes, options, the fused layers against plain torch.nn, spectral
norm, initialisation, argument and label checks, and the triton backend against the torch one."""

import copy
import itertools
from collections import OrderedDict

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

import ganfast
from ganfast.models.nets import (
    ConvDiscriminator,
    ConvGenerator,
    MLPDiscriminator,
    MLPGenerator,
    count_parameters,
    init_weights,
    stddev_group_size,
)
from ganfast.nn import (
    ConvBNLeakyReLU2d,
    ConvTransposeBNReLU2d,
    MinibatchDiscrimination,
    MinibatchStdDev,
    SelfAttention2d,
)

LATENT = 8


def _labels(batch, num_classes):
    return torch.randint(0, num_classes, (batch,)) if num_classes else None


def _set_attention_gamma(net, value=0.5):
    # gamma starts at 0, which would make the attention path (and its gradients) vanish from the checks.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, SelfAttention2d):
                m.gamma.fill_(value)


def _assert_all_grads(net):
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


# ---------------------------------------------------------------------------
# shapes

@pytest.mark.parametrize("size", [8, 16, 32])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("num_classes", [0, 4])
def test_conv_shapes(size, channels, num_classes):
    batch = 3 if channels == 1 else 5
    G = ConvGenerator(LATENT, (channels, size, size), width=4, num_classes=num_classes)
    D = ConvDiscriminator((channels, size, size), width=4, num_classes=num_classes)
    y = _labels(batch, num_classes)
    x = G(torch.randn(batch, LATENT), y)
    assert x.shape == (batch, channels, size, size)
    assert x.abs().max() <= 1.0  # tanh output
    logits, features = D(x, y, return_features=True)
    assert logits.shape == (batch,)
    assert features.shape == (batch, D.feature_dim)
    logits.sum().backward()
    _assert_all_grads(G)
    _assert_all_grads(D)


@pytest.mark.parametrize("out_shape", [12, (1, 4, 4), (3, 8, 8)])
@pytest.mark.parametrize("num_classes", [0, 3])
def test_mlp_shapes(out_shape, num_classes):
    batch = 5
    G = MLPGenerator(LATENT, out_shape, hidden=(16, 8), num_classes=num_classes)
    D = MLPDiscriminator(out_shape, hidden=(16, 8), num_classes=num_classes)
    want = (batch, out_shape) if isinstance(out_shape, int) else (batch, *out_shape)
    y = _labels(batch, num_classes)
    x = G(torch.randn(batch, LATENT), y)
    assert x.shape == want
    logits, features = D(x, y, return_features=True)
    assert logits.shape == (batch,)
    assert features.shape == (batch, 8) and D.feature_dim == 8
    logits.sum().backward()
    _assert_all_grads(G)
    _assert_all_grads(D)


def test_dcgan_channel_rule():
    """DCGAN's 64x64 layout: 512, 256, 128, 64 channels in G; 64, 128, 256, 512 in D."""
    G = ConvGenerator(100, (3, 64, 64))
    D = ConvDiscriminator((3, 64, 64))
    assert [b.conv.out_channels for b in G.blocks] == [512, 256, 128, 64]
    assert G.output.out_channels == 3
    assert [b.conv.out_channels for b in D.blocks] == [64, 128, 256, 512]
    assert D.feature_dim == 512 * 4 * 4
    capped = ConvGenerator(100, (3, 64, 64), width=16, max_width=32)
    assert [b.conv.out_channels for b in capped.blocks] == [32, 32, 32, 16]


def test_conditional_inputs_change_output():
    G = ConvGenerator(LATENT, (1, 8, 8), width=4, num_classes=3).eval()
    D = ConvDiscriminator((1, 8, 8), width=4, num_classes=3).eval()
    z = torch.randn(2, LATENT).repeat(3, 1)
    y = torch.arange(3).repeat_interleave(2)
    x = G(z, y)
    assert not torch.allclose(x[0], x[2])
    assert D.blocks[0].conv.in_channels == 1 + 3  # one-hot maps on the input channels
    logits = D(x[:1].expand(3, -1, -1, -1), torch.arange(3))
    assert logits.unique().numel() == 3


# ---------------------------------------------------------------------------
# every option combination that matters

@pytest.mark.parametrize("batch_norm,spectral_norm_,attention,num_classes",
                         list(itertools.product([False, True], [False, True], [None, 4, 8], [0, 3])))
def test_conv_generator_options(batch_norm, spectral_norm_, attention, num_classes):
    G = ConvGenerator(LATENT, (3, 16, 16), width=4, num_classes=num_classes, batch_norm=batch_norm,
                      spectral_norm=spectral_norm_, self_attention=attention)
    _set_attention_gamma(G)
    x = G(torch.randn(3, LATENT), _labels(3, num_classes))
    assert x.shape == (3, 3, 16, 16)
    x.square().sum().backward()
    _assert_all_grads(G)
    assert sum(isinstance(m, SelfAttention2d) for m in G.modules()) == (attention is not None)


@pytest.mark.parametrize("batch_norm,spectral_norm_,attention,stddev,mbd,num_classes",
                         list(itertools.product([False, True], [False, True], [None, 8], [False, True],
                                                [None, (3, 2)], [0, 3])))
def test_conv_discriminator_options(batch_norm, spectral_norm_, attention, stddev, mbd, num_classes):
    D = ConvDiscriminator((3, 16, 16), width=4, num_classes=num_classes, batch_norm=batch_norm,
                          spectral_norm=spectral_norm_, self_attention=attention, minibatch_stddev=stddev,
                          minibatch_discrimination=mbd)
    _set_attention_gamma(D)
    logits, features = D(torch.randn(3, 3, 16, 16), _labels(3, num_classes), return_features=True)
    assert logits.shape == (3,)
    assert features.shape == (3, D.feature_dim) == (3, (8 + stddev) * 16)
    (logits.sum() + features.square().sum()).backward()
    _assert_all_grads(D)
    assert any(isinstance(m, MinibatchStdDev) for m in D.modules()) == stddev
    assert any(isinstance(m, MinibatchDiscrimination) for m in D.modules()) == (mbd is not None)


@pytest.mark.parametrize("batch_norm,spectral_norm_,activation,out_activation,num_classes",
                         list(itertools.product([False, True], [False, True], ["relu", "leaky_relu", "elu"],
                                                [None, "tanh"], [0, 3])))
def test_mlp_generator_options(batch_norm, spectral_norm_, activation, out_activation, num_classes):
    G = MLPGenerator(LATENT, (2, 3), hidden=(8, 8), num_classes=num_classes, embed_dim=5 if num_classes else None,
                     activation=activation, batch_norm=batch_norm, out_activation=out_activation,
                     spectral_norm=spectral_norm_)
    x = G(torch.randn(5, LATENT), _labels(5, num_classes))
    assert x.shape == (5, 2, 3)
    if out_activation == "tanh":
        assert x.abs().max() <= 1.0
    x.square().sum().backward()
    _assert_all_grads(G)
    assert any(isinstance(m, nn.BatchNorm1d) for m in G.modules()) == batch_norm


@pytest.mark.parametrize("batch_norm,spectral_norm_,dropout,mbd,num_classes",
                         list(itertools.product([False, True], [False, True], [0.0, 0.3], [None, (3, 2)], [0, 3])))
def test_mlp_discriminator_options(batch_norm, spectral_norm_, dropout, mbd, num_classes):
    D = MLPDiscriminator((2, 3), hidden=(8, 6), num_classes=num_classes, batch_norm=batch_norm, dropout=dropout,
                         spectral_norm=spectral_norm_, minibatch_discrimination=mbd)
    logits, features = D(torch.randn(5, 2, 3), _labels(5, num_classes), return_features=True)
    assert logits.shape == (5,) and features.shape == (5, 6)
    logits.sum().backward()
    _assert_all_grads(D)
    assert any(isinstance(m, nn.Dropout) for m in D.modules()) == (dropout > 0)
    D.eval()
    x, y = torch.randn(5, 2, 3), _labels(5, num_classes)
    assert torch.equal(D(x, y), D(x, y))  # eval: no dropout, running statistics


def test_features_feed_the_head():
    D = ConvDiscriminator((3, 16, 16), width=4, minibatch_stddev=True, minibatch_discrimination=(3, 2)).eval()
    logits, features = D(torch.randn(4, 3, 16, 16), return_features=True)
    torch.testing.assert_close(logits, D.head(D.mbd(features)).squeeze(1))
    M = MLPDiscriminator(6, hidden=(5,), minibatch_discrimination=(2, 2)).eval()
    logits, features = M(torch.randn(4, 6), return_features=True)
    torch.testing.assert_close(logits, M.head(M.mbd(features)).squeeze(1))


# ---------------------------------------------------------------------------
# the fused layers: present, torch-like keys, and the same function as plain torch.nn

def test_fused_layers_present():
    G = ConvGenerator(LATENT, (3, 32, 32), width=4)
    D = ConvDiscriminator((3, 32, 32), width=4)
    assert all(isinstance(b, ConvTransposeBNReLU2d) for b in G.blocks) and len(G.blocks) == 3
    assert not isinstance(D.blocks[0], ConvBNLeakyReLU2d)  # DCGAN: no BatchNorm on the first layer
    assert all(isinstance(b, ConvBNLeakyReLU2d) for b in D.blocks[1:]) and len(D.blocks) == 3
    assert all(b.conv.bias is None for b in list(G.blocks) + list(D.blocks[1:]))
    for net in (ConvGenerator(LATENT, (3, 32, 32), width=4, batch_norm=False),
                ConvDiscriminator((3, 32, 32), width=4, batch_norm=False)):
        assert not any(isinstance(m, (ConvBNLeakyReLU2d, ConvTransposeBNReLU2d, nn.BatchNorm2d))
                       for m in net.modules())
        assert all(b.conv.bias is not None for b in net.blocks)
    bn_keys = ["conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    small = ConvGenerator(LATENT, (1, 16, 16), width=4)
    assert list(small.state_dict()) == [f"blocks.{i}.{k}" for i in range(2) for k in bn_keys] + [
        "output.weight", "output.bias"]
    plain = ConvDiscriminator((1, 16, 16), width=4, batch_norm=False)
    assert list(plain.state_dict()) == ["blocks.0.conv.weight", "blocks.0.conv.bias", "blocks.1.conv.weight",
                                        "blocks.1.conv.bias", "head.weight", "head.bias"]


def _torch_block(conv, out_channels, act):
    return nn.Sequential(OrderedDict(conv=conv, bn=nn.BatchNorm2d(out_channels), act=act))


class TorchDCGANGenerator(nn.Module):
    """DCGAN's generator written with torch.nn alone, named so that its keys are ConvGenerator's."""

    def __init__(self, latent_dim, image_shape, width, max_width=512):
        super().__init__()
        channels, size, _ = image_shape
        blocks, in_ch, r = [], latent_dim, 4
        while r <= size // 2:
            out_ch = min(max_width, width * (size // 2) // r)
            k, s, p = (4, 1, 0) if r == 4 else (4, 2, 1)
            blocks.append(_torch_block(nn.ConvTranspose2d(in_ch, out_ch, k, s, p, bias=False), out_ch, nn.ReLU()))
            in_ch, r = out_ch, 2 * r
        self.blocks = nn.Sequential(*blocks)
        self.output = nn.ConvTranspose2d(in_ch, channels, 4, 2, 1)

    def forward(self, z):
        return torch.tanh(self.output(self.blocks(z[:, :, None, None])))


class TorchDCGANDiscriminator(nn.Module):
    """DCGAN's discriminator written with torch.nn alone, named so that its keys are ConvDiscriminator's."""

    def __init__(self, image_shape, width, max_width=512):
        super().__init__()
        channels, size, _ = image_shape
        blocks = [nn.Sequential(OrderedDict(conv=nn.Conv2d(channels, width, 4, 2, 1), act=nn.LeakyReLU(0.2)))]
        in_ch, r = width, size // 4
        while r >= 4:
            out_ch = min(max_width, width * (size // 2) // r)
            blocks.append(_torch_block(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False), out_ch, nn.LeakyReLU(0.2)))
            in_ch, r = out_ch, r // 2
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(in_ch * 16, 1)

    def forward(self, x):
        return self.head(self.blocks(x).flatten(1)).squeeze(1)


def _spectral_norm_all(net):
    for m in [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]:
        spectral_norm(m)


def _compare_with_torch(net, ref, inputs, steps=2):
    """Train-mode float64: outputs, every parameter gradient and the running statistics."""
    net, ref = net.double().train(), ref.double().train()
    ref.load_state_dict(net.state_dict())  # strict: the keys line up one to one
    for _ in range(steps):
        x = inputs().double()
        out, want = net(x), ref(x)
        torch.testing.assert_close(out, want, rtol=1e-10, atol=1e-12)
        weight = torch.randn_like(out)
        grads = torch.autograd.grad((out * weight).sum(), list(net.parameters()))
        want_grads = torch.autograd.grad((want * weight).sum(), list(ref.parameters()))
        for (name, _), g, w in zip(net.named_parameters(), grads, want_grads):
            torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")
    for (name, b), w in zip(net.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(b, w, rtol=1e-10, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("sn", [False, True])
def test_generator_matches_torch_nn(sn):
    net = init_weights(ConvGenerator(LATENT, (3, 32, 32), width=4, spectral_norm=sn))
    ref = TorchDCGANGenerator(LATENT, (3, 32, 32), width=4)
    if sn:
        _spectral_norm_all(ref)
    assert count_parameters(net) == count_parameters(ref)
    _compare_with_torch(net, ref, lambda: torch.randn(5, LATENT))


@pytest.mark.parametrize("sn", [False, True])
def test_discriminator_matches_torch_nn(sn):
    net = init_weights(ConvDiscriminator((3, 32, 32), width=4, spectral_norm=sn))
    ref = TorchDCGANDiscriminator((3, 32, 32), width=4)
    if sn:
        _spectral_norm_all(ref)
    assert count_parameters(net) == count_parameters(ref)
    _compare_with_torch(net, ref, lambda: torch.randn(5, 3, 32, 32))


def test_eval_mode_matches_torch_nn():
    net = init_weights(ConvDiscriminator((1, 16, 16), width=4)).double()
    ref = TorchDCGANDiscriminator((1, 16, 16), width=4).double()
    net(torch.randn(6, 1, 16, 16, dtype=torch.float64))  # non-trivial running statistics
    ref.load_state_dict(net.state_dict())
    x = torch.randn(3, 1, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(net.eval()(x), ref.eval()(x), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------
# spectral norm and initialisation

def _sigma(module):
    """Largest singular value of the weight the module computes with (no power iteration in eval)."""
    w = module.weight
    if isinstance(module, nn.ConvTranspose2d):
        w = w.transpose(0, 1)  # spectral_norm normalises ConvTranspose along dim 1
    return torch.linalg.matrix_norm(w.flatten(1).double(), ord=2).item()


def _normalised_modules(net):
    return [m for m in net.modules() if parametrize.is_parametrized(m, "weight")]


def test_spectral_norm_normalises():
    G = ConvGenerator(LATENT, (3, 16, 16), width=4, spectral_norm=True, self_attention=8)
    D = ConvDiscriminator((3, 16, 16), width=4, spectral_norm=True, self_attention=8,
                          minibatch_discrimination=(3, 2))
    for net in (G, D):
        mods = _normalised_modules(net)
        # every conv / linear, the fused layers' conv and the attention projections included
        assert len(mods) == sum(isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)) for m in net.modules())
        with torch.no_grad():
            for m in mods:
                m.parametrizations.weight.original.mul_(10.0)
    for _ in range(30):  # one power iteration per train-mode forward
        D(G(torch.randn(4, LATENT)))
    for net in (G, D):
        net.eval()
        with torch.no_grad():
            for m in _normalised_modules(net):
                assert _sigma(m) == pytest.approx(1.0, abs=2e-2), m
                w = m.parametrizations.weight.original
                assert torch.linalg.matrix_norm(w.flatten(1).double(), ord=2) > 1.5  # the raw weight is not
    keys = list(G.state_dict())
    assert "blocks.0.conv.parametrizations.weight.original" in keys
    assert "blocks.0.conv.parametrizations.weight.0._u" in keys


def test_init_weights_dcgan():
    G = ConvGenerator(100, (3, 32, 32), width=64, num_classes=4, self_attention=8)
    D = ConvDiscriminator((3, 32, 32), width=64, minibatch_discrimination=(4, 3))
    embed, T = G.embed.weight.clone(), D.mbd.T.clone()
    for net in (G, D):
        assert init_weights(net) is net
    big = G.blocks[0]  # 108 x 256 x 4 x 4 weights, 256 BatchNorm channels
    assert big.conv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert big.conv.weight.mean().abs().item() < 1e-3
    assert big.bn.weight.mean().item() == pytest.approx(1.0, abs=0.01)
    assert big.bn.weight.std().item() == pytest.approx(0.02, rel=0.3)
    for net in (G, D):
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d)) and m.bias is not None:
                assert not m.bias.any(), m
    assert torch.equal(G.embed.weight, embed) and torch.equal(D.mbd.T, T)
    assert G.blocks[2].gamma.item() == 0.0  # the attention block still starts as the identity

    plain = ConvGenerator(LATENT, (3, 16, 16), width=4)
    before = copy.deepcopy(plain.state_dict())
    init_weights(plain, style="default")
    assert all(torch.equal(before[k], v) for k, v in plain.state_dict().items())


def test_init_weights_spectral_norm():
    """The original is redrawn and the power iteration re-converged: sigma is right even in eval mode."""
    D = ConvDiscriminator((3, 16, 16), width=8, spectral_norm=True, self_attention=8)
    init_weights(D).eval()
    for m in _normalised_modules(D):
        if isinstance(m, nn.Conv2d) and m.kernel_size == (4, 4):
            assert m.parametrizations.weight.original.std().item() == pytest.approx(0.02, rel=0.2)
        assert _sigma(m) == pytest.approx(1.0, abs=2e-2), m


def test_count_parameters():
    G = ConvGenerator(LATENT, (3, 16, 16), width=4)
    assert count_parameters(G) == sum(p.numel() for p in G.parameters())
    assert count_parameters(ConvGenerator(LATENT, (3, 16, 16), width=4, spectral_norm=True)) == count_parameters(G)
    G.output.requires_grad_(False)
    assert count_parameters(G, trainable_only=True) == count_parameters(G) - G.output.weight.numel() - 3
    M = MLPGenerator(4, 6, hidden=(5,))
    assert count_parameters(M) == (4 * 5 + 5) + (5 * 6 + 6)


# ---------------------------------------------------------------------------
# minibatch standard deviation: any batch size

def test_stddev_group_size():
    assert [stddev_group_size(b) for b in range(1, 13)] == [1, 2, 3, 4, 5, 3, 7, 4, 3, 2, 11, 4]
    assert stddev_group_size(8, group_size=2) == 2


@pytest.mark.parametrize("batch", [1, 3, 5, 6, 7, 8])
def test_stddev_any_batch(batch):
    D = ConvDiscriminator((1, 8, 8), width=4, minibatch_stddev=True).double()
    x = torch.randn(batch, 1, 8, 8, dtype=torch.float64)
    logits = D(x)
    logits.sum().backward()
    assert logits.shape == (batch,)
    h = D.stddev(D.blocks(x))
    g = stddev_group_size(batch)
    # the StyleGAN2 statistic, written out for the group the layer picked
    y = D.blocks(x).reshape(g, batch // g, -1)
    want = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=1).repeat(g)
    torch.testing.assert_close(h[:, -1, 0, 0], want)


# ---------------------------------------------------------------------------
# labels and arguments

NETS = {
    "mlp_g": (lambda n: MLPGenerator(LATENT, 6, hidden=(4,), num_classes=n), lambda b: torch.randn(b, LATENT)),
    "mlp_d": (lambda n: MLPDiscriminator(6, hidden=(4,), num_classes=n), lambda b: torch.randn(b, 6)),
    "conv_g": (lambda n: ConvGenerator(LATENT, (1, 8, 8), width=4, num_classes=n), lambda b: torch.randn(b, LATENT)),
    "conv_d": (lambda n: ConvDiscriminator((1, 8, 8), width=4, num_classes=n), lambda b: torch.randn(b, 1, 8, 8)),
}

BAD_LABELS = {
    "missing": (None, "is required"),
    "too_large": (torch.tensor([0, 3, 1]), r"in \[0, 3\)"),
    "negative": (torch.tensor([0, -1, 1]), r"in \[0, 3\)"),
    "float": (torch.tensor([0.0, 1.0, 2.0]), "int64"),
    "int32": (torch.tensor([0, 1, 2], dtype=torch.int32), "int64"),
    "2d": (torch.tensor([[0], [1], [2]]), r"shape \(3,\)"),
    "wrong_batch": (torch.tensor([0, 1]), r"shape \(3,\)"),
    "list": ([0, 1, 2], "int64"),
}


@pytest.mark.parametrize("net", list(NETS))
@pytest.mark.parametrize("case", list(BAD_LABELS))
def test_label_errors(net, case):
    build, inputs = NETS[net]
    y, match = BAD_LABELS[case]
    with pytest.raises(ValueError, match=match):
        build(3)(inputs(3), y)


@pytest.mark.parametrize("net", list(NETS))
def test_labels_for_unconditional_net(net):
    build, inputs = NETS[net]
    with pytest.raises(ValueError, match="unconditional"):
        build(0)(inputs(3), torch.tensor([0, 1, 2]))
    build(3)(inputs(3), torch.tensor([0, 1, 2]))  # the same labels are fine for a conditional one


@pytest.mark.parametrize("net", list(NETS))
def test_input_shape_errors(net):
    build, inputs = NETS[net]
    x = inputs(3)
    with pytest.raises(ValueError, match="must have shape"):
        build(0)(torch.cat([x, x], dim=1))


BAD_ARGS = [
    (MLPGenerator, (0, 4), {}, "latent_dim"),
    (MLPGenerator, (4, (2, 0)), {}, "out_shape"),
    (MLPGenerator, (4, "4"), {}, "out_shape"),
    (MLPGenerator, (4, 4), {"hidden": (4, -1)}, "hidden"),
    (MLPGenerator, (4, 4), {"activation": "tanh"}, "activation"),
    (MLPGenerator, (4, 4), {"out_activation": "relu"}, "out_activation"),
    (MLPGenerator, (4, 4), {"embed_dim": 3}, "embed_dim"),
    (MLPGenerator, (4, 4), {"num_classes": 2, "embed_dim": 0}, "embed_dim"),
    (MLPGenerator, (4, 4), {"num_classes": -1}, "num_classes"),
    (MLPGenerator, (4, 4), {"batch_norm": 1}, "batch_norm"),
    (MLPDiscriminator, (4,), {"dropout": 1.0}, "dropout"),
    (MLPDiscriminator, (4,), {"minibatch_discrimination": (3,)}, "minibatch_discrimination"),
    (MLPDiscriminator, (4,), {"minibatch_discrimination": (3, 0)}, "minibatch_discrimination"),
    (MLPDiscriminator, (4,), {"spectral_norm": "yes"}, "spectral_norm"),
    (MLPDiscriminator, (4,), {"activation": None}, "activation"),
    (ConvGenerator, (8, (3, 12, 12)), {}, "image_shape"),
    (ConvGenerator, (8, (3, 16, 8)), {}, "image_shape"),
    (ConvGenerator, (8, (3, 4, 4)), {}, "image_shape"),
    (ConvGenerator, (8, (3, 16)), {}, "image_shape"),
    (ConvGenerator, (8, (3, 16, 16)), {"width": 0}, "width"),
    (ConvGenerator, (8, (3, 16, 16)), {"width": 8, "max_width": 4}, "max_width"),
    (ConvGenerator, (8, (3, 16, 16)), {"self_attention": 16}, "self_attention"),
    (ConvGenerator, (8, (3, 16, 16)), {"self_attention": 2}, "self_attention"),
    (ConvGenerator, (8, (3, 16, 16)), {"embed_dim": 4}, "embed_dim"),
    (ConvDiscriminator, ((3, 16, 16),), {"self_attention": 16}, "self_attention"),
    (ConvDiscriminator, ((3, 16, 16),), {"self_attention": 2}, "self_attention"),
    (ConvDiscriminator, ((3, 16, 16),), {"negative_slope": -0.1}, "negative_slope"),
    (ConvDiscriminator, ((3, 16, 16),), {"num_classes": 1.5}, "num_classes"),
    (ConvDiscriminator, ((3, 16, 16),), {"minibatch_stddev": None}, "minibatch_stddev"),
    (ConvDiscriminator, ((3, 16, 16),), {"minibatch_discrimination": 4}, "minibatch_discrimination"),
]


@pytest.mark.parametrize("cls,args,kwargs,name", BAD_ARGS, ids=[f"{c.__name__}-{n}" for c, _, _, n in BAD_ARGS])
def test_bad_arguments(cls, args, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(*args, **kwargs)


def test_bad_utility_arguments():
    with pytest.raises(ValueError, match="style"):
        init_weights(nn.Linear(2, 2), style="xavier")
    with pytest.raises(TypeError, match="module"):
        init_weights("not a module")
    with pytest.raises(TypeError, match="module"):
        count_parameters(None)


def test_repr_names_the_arguments():
    text = repr(ConvGenerator(LATENT, (3, 16, 16), width=4, self_attention=8))
    assert "latent_dim=8" in text and "width=4" in text and "self_attention=8" in text
    text = repr(ConvDiscriminator((3, 16, 16), width=4, minibatch_stddev=True))
    assert "minibatch_stddev=True" in text and "feature_dim=144" in text
    assert "hidden=(16,)" in repr(MLPDiscriminator(4, hidden=(16,)))
    assert "out_activation='tanh'" in repr(MLPGenerator(4, 4, out_activation="tanh"))


# ---------------------------------------------------------------------------
# the triton backend computes what the torch backend does

def _max_rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize("size", [8, 16])
def test_triton_backend_matches_torch(size):
    try:
        import ganfast.kernels  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name != "ganfast.kernels":
            raise
        pytest.skip("ganfast.kernels is not installed here (pip install -e . installs kernels/ under it)")
    G = ConvGenerator(LATENT, (3, size, size), width=4, num_classes=2, self_attention=4, spectral_norm=True)
    D = ConvDiscriminator((3, size, size), width=4, num_classes=2, self_attention=4, minibatch_stddev=True,
                          minibatch_discrimination=(3, 2))
    for net in (G, D):
        _set_attention_gamma(net)
    z, y = torch.randn(2, LATENT), torch.tensor([1, 0])
    results = {}
    for backend in ("torch", "triton"):
        g, d = copy.deepcopy(G), copy.deepcopy(D)
        with ganfast.use_backend(backend):
            x = g(z, y)
            logits = d(x, y)
            logits.square().sum().backward()
        results[backend] = [x, logits] + [p.grad for p in list(g.parameters()) + list(d.parameters())]
    names = ["x", "logits"] + [f"G.{n}" for n, _ in G.named_parameters()] + [f"D.{n}" for n, _ in D.named_parameters()]
    largest_grad = max(g.abs().max() for g in results["torch"][2:])
    for name, got, want in zip(names, results["triton"], results["torch"]):
        if name.endswith("key.bias"):
            # Softmax over keys ignores a shift common to them all, and q_i . b_k is one: this gradient is
            # zero in exact arithmetic and rounding noise on either backend, so only its size is checked.
            assert max(got.abs().max(), want.abs().max()) < 1e-4 * largest_grad, name
            continue
        assert _max_rel(got, want) < 1e-4, name
