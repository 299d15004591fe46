"""The FID Inception-v3: architecture, the FID graph's differences, weights files, preprocessing.

The real weights are not available here (and are never downloaded): the
network is tested with random weights, saved to a file the test writes and
loaded back through the same path a user's file takes.
"""

import pytest
import torch
import torch.nn.functional as F

from ganfast.metrics import FID, InceptionV3, load_inception
from ganfast.metrics import inception as inc


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(3)
    return InceptionV3().eval()


@pytest.fixture(scope="module")
def small(net):
    """The same network without the resize to 299 (inputs of 75 x 75 and up): ~15x cheaper on a CPU."""
    m = InceptionV3(resize_input=False).eval()
    m.load_state_dict(net.state_dict())
    return m


@pytest.fixture(scope="module")
def weights(net, tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "random_inception.pth"
    torch.save(net.state_dict(), path)
    return path


def test_torchvision_names_and_shapes(net):
    sd = net.state_dict()
    expect = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_4a_3x3.bn.running_var": (192,),
        "Mixed_5b.branch5x5_2.conv.weight": (64, 48, 5, 5),
        "Mixed_5d.branch_pool.conv.weight": (64, 288, 1, 1),
        "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
        "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
        "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
        "Mixed_7b.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
        "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
        "fc.weight": (1008, 2048),
        "fc.bias": (1008,),
    }
    for key, shape in expect.items():
        assert tuple(sd[key].shape) == shape, key
    convs = [m for m in net.modules() if isinstance(m, inc.BasicConv2d)]
    assert len(convs) == 94  # Inception-v3 without the auxiliary head
    assert all(c.bn.eps == 1e-3 and c.conv.bias is None for c in convs)
    assert not any(k.startswith("AuxLogits") for k in sd)


def test_fid_graph_pooling_differences(net):
    # SAME average pooling without the padding: a constant image stays constant up to the border
    ones = torch.ones(1, 2, 5, 5)
    assert torch.equal(inc._avg_pool_same(ones), ones)
    assert not torch.equal(F.avg_pool2d(ones, 3, 1, 1), ones)  # what count_include_pad=True would give
    assert net.Mixed_7b.pool == "avg" and net.Mixed_7c.pool == "max"
    # the last block's pooling branch is a max pool: check it in the block's output
    block = net.Mixed_7c
    x = torch.rand(1, 2048, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = block(x)
        want = block.branch_pool(F.max_pool2d(x, 3, 1, 1))
        other = block.branch_pool(inc._avg_pool_same(x))
    torch.testing.assert_close(out[:, -192:], want, rtol=0, atol=0)
    assert not torch.allclose(want, other)
    assert out.shape == (1, 2048, 8, 8)


def test_forward_resizes_and_normalizes_like_the_reference(net):
    g = torch.Generator().manual_seed(2)
    images = torch.rand(2, 3, 40, 56, generator=g)
    with torch.no_grad():
        feats, logits = net.features_and_logits(images)
        # the same by hand: bilinear to 299 x 299 (align_corners=False), then [0, 1] -> [-1, 1]
        x = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
        by_hand = net.pool3(x)
    assert feats.shape == (2, 2048) and logits.shape == (2, 1008)
    assert feats.dtype == torch.float32 and torch.isfinite(feats).all() and (feats >= 0).all()
    torch.testing.assert_close(feats, by_hand, rtol=0, atol=0)
    torch.testing.assert_close(logits, net.fc(feats), rtol=0, atol=0)
    assert feats.std(0).max() > 0  # the two images give different features


def test_without_resize_the_smallest_input_is_75(small):
    gray = torch.rand(1, 1, 75, 75)
    with torch.no_grad():
        torch.testing.assert_close(small(gray), small(gray.expand(-1, 3, -1, -1)), rtol=0, atol=0)
        assert small(torch.rand(1, 3, 75, 75)).shape == (1, 2048)
    with pytest.raises(ValueError, match="at least 75x75"):
        small(torch.rand(1, 3, 74, 80))
    with pytest.raises(ValueError, match=r"shape \(N, 3, H, W\)"):
        small(torch.rand(3, 75, 75))


def test_weights_round_trip(small, weights, monkeypatch):
    x = torch.rand(1, 3, 75, 80, generator=torch.Generator().manual_seed(4))
    loaded = load_inception(weights, resize_input=False)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert loaded.weights_file == str(weights)
    with torch.no_grad():
        want = small(x)
        torch.testing.assert_close(loaded(x), want, rtol=0, atol=0)
        monkeypatch.setenv("GANFAST_INCEPTION_WEIGHTS", str(weights))
        torch.testing.assert_close(load_inception(resize_input=False)(x), want, rtol=0, atol=0)


def test_weights_file_variants(net, tmp_path):
    sd = net.state_dict()
    # a DataParallel checkpoint without BatchNorm counters, with an auxiliary head: loads
    variant = {"module." + k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    variant["module.AuxLogits.fc.weight"] = torch.zeros(1008, 768)
    p = tmp_path / "variant.pth"
    torch.save({"state_dict": variant}, p)
    load_inception(p)
    # torchvision's ImageNet weights: a specific error
    tv = dict(sd)
    tv["fc.weight"], tv["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    torch.save(tv, tmp_path / "tv.pth")
    with pytest.raises(ValueError, match="torchvision's ImageNet Inception-v3 weights"):
        load_inception(tmp_path / "tv.pth")
    # something else entirely
    broken = {k: v for k, v in sd.items() if not k.startswith("Mixed_7c")}
    broken["extra.weight"] = torch.zeros(1)
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match="missing.*Mixed_7c.*unexpected.*extra.weight"):
        load_inception(tmp_path / "broken.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot read Inception weights"):
        load_inception(tmp_path / "junk.pth")


def test_missing_weights_error_names_the_file_and_the_places(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("GANFAST_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(FileNotFoundError) as info:
        load_inception()
    msg = str(info.value)
    assert inc.INCEPTION_WEIGHTS_FILE in msg and inc.INCEPTION_WEIGHTS_URL in msg
    assert "GANFAST_INCEPTION_WEIGHTS" in msg and "never downloads" in msg
    assert str(tmp_path / ".cache" / "ganfast" / inc.INCEPTION_WEIGHTS_FILE) in msg
    monkeypatch.setenv("GANFAST_INCEPTION_WEIGHTS", str(tmp_path / "nope.pth"))
    with pytest.raises(FileNotFoundError, match="GANFAST_INCEPTION_WEIGHTS names a file that does not exist"):
        load_inception()
    with pytest.raises(FileNotFoundError, match="does not exist: .*given.pth"):
        load_inception(tmp_path / "given.pth")


def test_default_location_is_found(net, monkeypatch, tmp_path, weights):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("GANFAST_INCEPTION_WEIGHTS", raising=False)
    target = tmp_path / ".cache" / "ganfast" / inc.INCEPTION_WEIGHTS_FILE
    target.parent.mkdir(parents=True)
    target.symlink_to(weights)
    assert load_inception().weights_file == str(target)


def test_fid_with_inception_end_to_end(net, weights):
    """Images through the real architecture (resized to 299) into FID; equals frechet_distance of the features."""
    from ganfast.metrics import FeatureStats, frechet_distance

    g = torch.Generator().manual_seed(5)
    real = torch.rand(2, 3, 32, 32, generator=g)
    fake = (torch.rand(2, 3, 32, 32, generator=g) * 0.5 * 255).to(torch.uint8)
    fid = FID(weights=weights)
    fid.update(real, real=True).update(fake, real=False)
    with torch.no_grad():
        a, b = net(real), net(fake.float() / 255)
    sa, sb = FeatureStats().update(a), FeatureStats().update(b)
    want = frechet_distance(sa.mean(), sa.covariance(), sb.mean(), sb.covariance())
    assert fid.compute() == pytest.approx(want, rel=1e-10) and want > 0
