"""Shared checks of the fused conv -> BatchNorm -> activation layers against their nn.Sequential."""

import copy

import torch

from ganfast import testing

from conftest import HAS_CUDA

DEVICE = "cuda" if HAS_CUDA else "cpu"


def check_steps(fused, seq, make_x, dtype, steps=3):
    """Train steps then eval: outputs, every gradient and the running statistics match (float64 reference)."""
    ref = copy.deepcopy(seq).double()
    fused = fused.to(DEVICE)
    for mode in ["train"] * steps + ["eval"]:
        fused.train(mode == "train")
        ref.train(mode == "train")
        x = make_x()
        xf = x.to(DEVICE, dtype).requires_grad_()
        xr = xf.detach().double().cpu().requires_grad_()
        with torch.autocast(DEVICE, enabled=False):
            out = fused(xf)
        want = ref(xr)
        if mode == "eval" and dtype in (torch.float16, torch.bfloat16):
            # In half precision BatchNorm amplifies the convolution output's rounding (it subtracts the
            # running mean, then scales), past the per-element table even for eager PyTorch; the
            # criterion is eager's own error in the same dtype.
            eager = copy.deepcopy(ref).to(dtype).eval()(xr.detach().to(dtype)).double()
            err, err_eager = (out.cpu().double() - want).abs().max(), (eager - want).abs().max()
            assert err <= 2 * err_eager + 1e-3 * want.abs().max(), (float(err), float(err_eager))
        else:
            testing.assert_close(out.cpu(), want, dtype, 0, f"{mode} output")
        g = torch.randn(want.shape, dtype=torch.float64)
        out.backward(g.to(out.device, out.dtype))
        want.backward(g)
        testing.assert_close(xf.grad.cpu(), xr.grad, dtype, 1, f"{mode} grad x")
        pairs = [(fused.conv.weight, ref[0].weight, "conv.weight")]
        if fused.conv.bias is not None:
            pairs.append((fused.conv.bias, ref[0].bias, "conv.bias"))
        if fused.bn.affine:
            pairs += [(fused.bn.weight, ref[1].weight, "bn.weight"), (fused.bn.bias, ref[1].bias, "bn.bias")]
        for a, b, name in pairs:
            if name == "conv.bias" and mode == "train":
                # Batch statistics cancel any per-channel constant: the exact gradient is 0, and both
                # sides hold only rounding noise, small against the other gradients.
                assert a.grad.abs().max() <= 1e-4 * xf.grad.abs().max() * xf[0].numel()
            else:
                testing.assert_close(a.grad.cpu(), b.grad, dtype, 1, f"{mode} grad {name}")
            a.grad = None
            b.grad = None
        if fused.bn.track_running_stats:
            # Half-precision buffers are rounded at every update (as in torch.nn): judged like an
            # accumulated quantity, with the first-derivative tolerance of their dtype.
            stat_dtype = fused.bn.running_mean.dtype
            order = 0 if stat_dtype in (torch.float32, torch.float64) else 1
            testing.assert_close(fused.bn.running_mean.cpu(), ref[1].running_mean, stat_dtype, order, "running_mean")
            testing.assert_close(fused.bn.running_var.cpu(), ref[1].running_var, stat_dtype, order, "running_var")
            assert int(fused.bn.num_batches_tracked) == int(ref[1].num_batches_tracked)


def check_inference(fused, seq, x, dtype, slack=None):
    """Eval mode without gradients (the one-kernel path on triton) against the float64 model (``slack``: an
    element-wise allowance beyond the table's tolerance, see :func:`ganfast.testing.assert_close`)."""
    ref = copy.deepcopy(seq).double().eval()
    fused = fused.to(DEVICE).eval()
    with torch.no_grad():
        out = fused(x.to(DEVICE, dtype))
        want = ref(x.to(dtype).double())
    assert out.dtype == dtype
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        assert out.is_contiguous(memory_format=torch.channels_last)
    testing.assert_close(out.cpu(), want, dtype, 0, "inference output", slack=slack)


def block_inputs(cin, cout, k, n, h, w, dtype, device, gen, transposed=False):
    """x, weight, bias, bn_weight, bn_bias, running_mean, running_var of a block, fresh random values.

    weight is (C_out, C_in, k, k), or (C_in, C_out, k, k) when ``transposed``.
    """
    def rand(*shape, scale=1.0, shift=0.0):
        return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale + shift).to(dtype).to(device)

    wshape = (cin, cout, k, k) if transposed else (cout, cin, k, k)
    return [rand(n, cin, h, w, scale=2.0, shift=0.5), rand(*wshape, scale=0.5), rand(cout, scale=0.5),
            rand(cout, scale=0.2, shift=1.0), rand(cout, scale=0.5), rand(cout, scale=0.3),
            (torch.rand(cout, generator=gen, dtype=torch.float64) + 0.5).to(dtype).to(device)]


def check_against_reference(op, reference, inputs, backend, device, training, gen, **kw):
    """``op`` (a functional block) against its ``ganfast.ref`` reference with :func:`ganfast.testing.check_op`.

    Running statistics are inputs that are not differentiated (in training mode each side updates its own),
    and in training mode neither is the convolution's bias: batch statistics cancel it, so its exact gradient
    is 0 and both sides hold only rounding noise.  gradcheck evaluates the op ~300 times: seconds on torch,
    minutes under the Triton interpreter, whose kernels the float32 and float64 comparisons already check.
    """
    kw = dict(kw, training=training)
    testing.check_op(lambda *a: op(*a, backend=backend, **kw), lambda *a: reference(*a, **kw), inputs,
                     differentiable=[0, 1, 3, 4] if training else [0, 1, 2, 3, 4], order=2, generator=gen,
                     gradcheck=None if backend in ("torch", "aten") or device == "cuda" else False)
