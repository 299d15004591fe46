"""The op layer's structure: leaf modules, an acyclic import graph, the registry, the checklist.

What docs/adding-an-op.md promises is checked here: a toy op added by its
checklist (in a package under tmp_path) is picked up by the shared test
fixtures, every registered op's fake implementation checks its arguments,
and the layering rules (no cycles, no private names across modules, kernels
independent of the reference) hold for the whole source tree.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import ganfast
from ganfast import _backend, testing

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


# -- the import graph, from the source --------------------------------------------------


def _source_modules():
    """``{module name: path}`` for ganfast/ and kernels/ (installed as ganfast.kernels)."""
    out = {}
    for base, prefix in ((ROOT / "ganfast", ["ganfast"]), (ROOT / "kernels", ["ganfast", "kernels"])):
        for path in base.rglob("*.py"):
            parts = prefix + list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _source_modules()


def _imports(module, path):
    """``(target module, imported names)`` for every import in ``module``, nested ones included.

    A literal ``importlib.import_module("ganfast...")`` counts as an import.
    """
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub, []) if sub in MODULES else (base, [alias.name])
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and node.args[0].value.startswith("ganfast")):
            yield node.args[0].value, []


def _known(target):
    """``target`` or its longest prefix that is a module of the tree, else None."""
    while target and target not in MODULES:
        target = target.rsplit(".", 1)[0] if "." in target else ""
    return target or None


def _graph():
    graph = {}
    for module, path in MODULES.items():
        deps = {_known(t) for t, _ in _imports(module, path)}
        graph[module] = sorted(d for d in deps if d and d != module)
    return graph


def _cycles(graph):
    state, stack, found = {}, [], []

    def visit(u):
        state[u] = 1
        stack.append(u)
        for v in graph[u]:
            if state.get(v) == 1:
                found.append(stack[stack.index(v):] + [v])
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return found


def test_import_graph_is_acyclic():
    """No import cycle in ganfast/ or kernels/, counting imports inside functions too."""
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_dispatch_does_not_import_upwards():
    """_backend knows the ops from its table; it imports neither ganfast.ops nor anything above it."""
    deps = _graph()["ganfast._backend"]
    assert not [d for d in deps if d.startswith(("ganfast.ops", "ganfast.nn", "ganfast.kernels", "ganfast.ref"))]
    assert "ganfast._backend" not in _graph()["ganfast._cuda"]


def test_kernels_do_not_import_the_reference():
    graph = _graph()
    offenders = {m: [d for d in deps if d.startswith("ganfast.ref")]
                 for m, deps in graph.items() if m.startswith("ganfast.kernels")}
    assert not {m: d for m, d in offenders.items() if d}


@pytest.mark.parametrize("area", ["ganfast.ops", "ganfast.ref", "ganfast.nn", "ganfast.bench", "ganfast.kernels",
                                  "ganfast._", "ganfast.testing", "ganfast.models", "ganfast.train", "ganfast.data",
                                  "ganfast.metrics", "ganfast.losses", "ganfast.cli"])
def test_no_private_names_across_modules(area):
    """A module imports another module's public names only (shared helpers are made public where they live)."""
    bad = []
    for module, path in MODULES.items():
        if not module.startswith(area):
            continue
        for target, names in _imports(module, path):
            if _known(target) is None:
                continue  # not ganfast's
            bad += [f"{module}: {n} from {target}" for n in names if n.startswith("_") and not n.startswith("__")]
    assert not bad, bad


LEAVES = ["ganfast._errors", "ganfast._dtypes", "ganfast._activations", "ganfast._checks"]


@pytest.mark.parametrize("leaf", LEAVES)
def test_leaf_modules_import_only_leaves(leaf):
    deps = _graph()[leaf]
    assert set(deps) <= set(LEAVES), deps


def test_importing_errors_loads_nothing_else_of_ganfast():
    """`python -c "import ganfast._errors"` loads ganfast/__init__ and _errors, and nothing else of ganfast."""
    env = {k: v for k, v in os.environ.items() if k != "GANFAST_BACKEND"}
    code = "import sys, ganfast._errors; print(sorted(m for m in sys.modules if m.split('.')[0] == 'ganfast'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['ganfast', 'ganfast._errors']"


def test_errors_are_re_exported_where_they_were():
    from ganfast import _errors
    from ganfast._backend import Availability, BackendUnavailable

    assert ganfast.BackendUnavailable is BackendUnavailable is _errors.BackendUnavailable
    assert Availability is _errors.Availability


# -- the registry ---------------------------------------------------------------------------


def test_every_declared_backend_is_registered():
    """After `import ganfast.ops`, each row of OPS has exactly its listed implementations."""
    import ganfast.ops

    assert ganfast.ops.bias_act
    for row in _backend.OPS:
        assert _backend.implemented(row.name) == row.backends, row.name


def test_register_rejects_an_undeclared_backend():
    with pytest.raises(ValueError, match="does not declare a 'cuda' backend"):
        _backend.register("self_attention2d", "cuda", lambda: None)
    with pytest.raises(ValueError, match="op must be one of"):
        _backend.register("no_such_op", "torch", lambda: None)


def test_op_tests_take_backends_from_the_registry():
    """No op test declares its backends by hand: `backend` comes from conftest's registry hook."""
    takes_backend = re.compile(r"def test_\w+\([^)]*\bbackend\b")
    op_tests = [TESTS / f"test_{row.name}.py" for row in _backend.OPS]
    op_tests = [path for path in op_tests if path.exists()]
    assert len(op_tests) >= 8
    for path in op_tests:
        text = path.read_text(encoding="utf-8")
        assert "BACKENDS = [" not in text, f"{path.name} declares BACKENDS by hand"
        assert 'parametrize("backend' not in text, f"{path.name} parametrises backend by hand"
        if takes_backend.search(text):
            assert f'OP = "{path.stem[5:]}"' in text, path.name


def test_backend_cases_follow_the_registry():
    cases = testing.backend_cases("bias_act")
    assert [c.backend for c in cases] == ["torch", "aten", "triton", "cuda"]
    assert cases[0].device == "cpu" and cases[0].availability
    assert cases[1].device == "cpu" and cases[1].availability
    assert [c.backend for c in testing.backend_cases("sqrtm")] == ["torch"]


# -- the checklist, end to end: a toy op in a temporary package ---------------------------------

TOY_OP = '''
    """``toy_scale``: y = x * scale, added by docs/adding-an-op.md's checklist."""

    import os
    import types

    import torch

    from ganfast import _backend
    from ganfast._checks import check_float, check_tensor

    from . import ref

    OP = "toy_scale"
    BACKENDS = tuple(os.environ.get("TOY_BACKENDS", "torch").split(","))

    # Step: declare the op (ganfast's own ops are rows of _backend.OPS).
    _backend.register_op(OP, auto_order=BACKENDS, backends=BACKENDS, module=__name__, why="a test's toy")
    # Step: one implementation per backend (the toy's "triton" is the reference: it tests the plumbing).
    for _name in BACKENDS:
        _backend.register(OP, _name, lambda: types.SimpleNamespace(forward=ref.toy_scale))


    def check_args(x, scale):
        check_tensor(x, "x", nonempty=True)
        return check_float(scale, "scale")


    @torch.library.custom_op("ganfast_toy::toy_scale", mutates_args=())
    def _toy_scale_op(x: torch.Tensor, scale: float, backend: str) -> torch.Tensor:
        _, impl = _backend.select(OP, backend, x.device)
        return impl.forward(x, scale)


    @_toy_scale_op.register_fake
    def _(x, scale, backend):
        check_args(x, scale)
        return torch.empty_like(x)


    def _setup(ctx, inputs, output):
        ctx.scale, ctx.backend = inputs[1], inputs[2]


    def _backward(ctx, grad):
        return _toy_scale_op(grad, ctx.scale, ctx.backend), None, None


    _toy_scale_op.register_autograd(_backward, setup_context=_setup)


    def toy_scale(x, scale=2.0, backend=None):
        scale = check_args(x, scale)
        return _toy_scale_op(x, scale, _backend.requested(backend))


    CUSTOM_OPS = (_toy_scale_op,)
'''

TOY_REF = '''
    """Reference for ``toy_scale``."""


    def toy_scale(x, scale):
        return x * scale
'''

TOY_TEST = '''
    import pytest
    import torch

    from ganfast import testing
    from toyop import ref
    from toyop.toy_scale import CUSTOM_OPS, toy_scale

    OP = "toy_scale"


    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_matches_reference(backend, device, dtype, gen):
        x = torch.randn(3, 5, generator=gen).to(dtype).to(device)
        testing.check_op(lambda x: toy_scale(x, 1.5, backend=backend), lambda x: ref.toy_scale(x, 1.5), [x],
                         differentiable=[0], order=2, generator=gen)


    def test_opcheck(backend, device):
        torch.library.opcheck(CUSTOM_OPS[0], (torch.randn(3, 4, device=device, requires_grad=True), 1.5, backend))


    def test_fake_checks_like_the_public_function(backend, device):
        with pytest.raises(Exception, match="x must be a torch.Tensor|x must not be empty"):
            torch.compile(lambda x: torch.ops.ganfast_toy.toy_scale(x, 1.5, backend), fullgraph=True,
                          backend="eager")(torch.randn(0, 3, device=device))
'''


def _run_toy(tmp_path, backends):
    pkg = tmp_path / "toyop"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "ref.py").write_text(textwrap.dedent(TOY_REF))
    (pkg / "toy_scale.py").write_text(textwrap.dedent(TOY_OP))
    (tmp_path / "test_toy_scale.py").write_text(textwrap.dedent(TOY_TEST))
    env = dict(os.environ, TOY_BACKENDS=backends,
               PYTHONPATH=os.pathsep.join([str(TESTS), str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    # -p conftest: the inner session loads this suite's conftest.py (the shared fixtures) as a plugin.
    cmd = [sys.executable, "-m", "pytest", str(tmp_path / "test_toy_scale.py"), "-p", "conftest", "-v",
           "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-W", "ignore::DeprecationWarning"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=str(tmp_path))


def test_toy_op_added_by_the_checklist_is_tested_by_the_shared_fixtures(tmp_path):
    out = _run_toy(tmp_path, "torch")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "4 passed" in out.stdout, out.stdout[-2000:]
    assert "test_opcheck[torch]" in out.stdout


def test_a_backend_added_to_the_registry_is_tested_without_editing_tests(tmp_path):
    out = _run_toy(tmp_path, "torch,triton")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "8 passed" in out.stdout, out.stdout[-2000:]
    assert "test_opcheck[triton]" in out.stdout


# -- registration checks inputs ------------------------------------------------------------------


def _cases():
    import ganfast.ops  # noqa: F401  (registers torch.ops.ganfast.*)

    x = torch.randn(2, 3, 4)
    q = torch.randn(2, 3, 6)
    y = torch.randn(3, 4, 5, 6)
    s = torch.eye(4, dtype=torch.float64)
    ops = torch.ops.ganfast
    return [
        ("bias_act", lambda: ops.bias_act(x, torch.randn(4), "leaky_relu", 0.2, 1.0, None, 1, "torch"),
         ValueError, r"bias must have shape \(3,\)"),
        ("bias_act act", lambda: ops.bias_act(x, None, "gelu2", 0.2, 1.0, None, 1, "torch"),
         ValueError, "act must be one of"),
        ("bias_act_grad", lambda: ops.bias_act_grad(torch.randn(2, 3), x, None, "tanh", 0.2, 1.0, None, 1, "torch"),
         ValueError, "grad must have shape"),
        ("bias_act_pixel_norm", lambda: ops.bias_act_pixel_norm(y, torch.randn(3), 0.2, 1e-8, "torch"),
         ValueError, r"bias must have shape \(4,\)"),
        ("batch_norm_act", lambda: ops.batch_norm_act(y, torch.randn(5), None, 1e-5, 0.2, "torch"),
         ValueError, r"weight must have shape \(4,\)"),
        ("conv_affine_act", lambda: ops.conv_affine_act(y, torch.randn(4, 3, 3, 3), *[torch.randn(4)] * 3, [1, 1],
                                                        [0, 0], [0, 0], False, 0.2, "torch"),
         ValueError, "x must have shape"),
        ("conv_transpose2d", lambda: ops.conv_transpose2d(y, torch.randn(4, 2, 3, 3), None, [5, 5], [0, 0], [0, 0],
                                                          "torch"),
         ValueError, "stride must be 1 to 4"),
        ("instance_norm_act", lambda: ops.instance_norm_act(y, torch.randn(5), None, 1e-5, 0.0, "torch"),
         ValueError, r"weight must have shape \(4,\)"),
        ("feature_stats", lambda: ops.feature_stats(torch.randn(4, 3), torch.zeros(3, dtype=torch.float64),
                                                    torch.zeros(3, dtype=torch.float64), torch.zeros(3, 3), "torch"),
         TypeError, "gram must be a float64 tensor"),
        ("minibatch_discrimination", lambda: ops.minibatch_discrimination(torch.randn(5, 4), torch.randn(3, 3, 2),
                                                                          "torch"),
         ValueError, r"T must have shape \(4, num_kernels"),
        ("minibatch_stddev", lambda: ops.minibatch_stddev(torch.randn(4, 3, 2, 2), 4, 2, 1e-8, "torch"),
         ValueError, r"num_channels \(2\) must divide"),
        ("self_attention2d", lambda: ops.self_attention2d(q, torch.randn(2, 4, 6), q, 1.0, "torch"),
         ValueError, "k must have q's shape"),
        ("sqrtm_trace", lambda: ops.sqrtm_trace(s, torch.eye(5, dtype=torch.float64), "auto", "torch"),
         ValueError, r"sigma2 must have shape \(4, 4\)"),
        ("sqrtm", lambda: ops.sqrtm(torch.randn(3, 4), "torch"), ValueError, "a must be a square matrix"),
        ("modulated_conv2d", lambda: ops.modulated_conv2d(y, torch.randn(2, 5, 3, 3), torch.randn(3, 4), None, None,
                                                          True, 1, 1, 1, "torch"),
         ValueError, "weight must have x's 4 input channels"),
        ("upfirdn2d", lambda: ops.upfirdn2d(y, torch.ones(4), 1, 1, 1, 1, -9, 0, 0, 0, False, 1.0, "torch"),
         ValueError, "the output would be empty"),
    ]


@pytest.mark.parametrize("case", range(16), ids=lambda i: ["bias_act", "bias_act-act", "bias_act_grad",
                                                           "bias_act_pixel_norm", "batch_norm_act", "conv_affine_act",
                                                           "conv_transpose2d", "instance_norm_act", "feature_stats",
                                                           "minibatch_discrimination", "minibatch_stddev",
                                                           "self_attention2d", "sqrtm_trace", "sqrtm",
                                                           "modulated_conv2d", "upfirdn2d"][i])
def test_fake_implementations_check_like_the_public_functions(case):
    """Each registered op's fake raises the public function's error, with its message, on fake tensors."""
    _, call, exc, words = _cases()[case]
    with FakeTensorMode(allow_non_fake_inputs=True), pytest.raises(exc, match=words):
        call()


def test_registered_op_under_compile_raises_the_clear_message():
    x = torch.randn(2, 3, 4)

    def f(x, b):
        return torch.ops.ganfast.bias_act(x, b, "leaky_relu", 0.2, 1.0, None, 1, "torch")

    torch._dynamo.reset()
    with pytest.raises(Exception, match=r"bias must have shape \(3,\)"):
        torch.compile(f, fullgraph=True, backend="eager")(x, torch.randn(5))


def test_every_registered_op_is_covered_by_a_fake_check():
    import ganfast.ops  # noqa: F401

    covered = {name.split()[0] for name, *_ in _cases()}
    forward_ops = {row.name for row in _backend.OPS} - {"conv_bn_act", "conv_transpose_bn_act"}
    assert forward_ops <= covered  # the two blocks are compositions of the registered ops above


# -- the Triton activation switch ----------------------------------------------------------------


def test_triton_activation_switch_raises_on_an_unknown_name():
    if not testing.runnable_backends("bias_act").count("triton"):
        pytest.skip("triton cannot run here")
    from ganfast.kernels import bias_act as kernels

    device = testing.device_for("triton")
    x = torch.randn(64, device=device)
    y = torch.empty_like(x)
    with pytest.raises(Exception, match="unknown activation"):
        kernels._bias_act_kernel[(1,)](x, x, x, y, 64, 1, 1, 0.2, 0.0, 1.0, 0.0, 0.0, 0.0, ACT="gelu",
                                       BACKWARD=False, HAS_BIAS=False, HAS_CLAMP=False, ACC=kernels.acc_type(x.dtype),
                                       INDEX64=False, BLOCK=64)


def test_check_op_says_when_gradcheck_cannot_run_and_rounds_the_upstream_gradient():
    """check_op skipped gradcheck silently above 4,096 elements: gradcheck=True now raises there (None runs it
    only where small), and the reference receives the upstream gradient rounded as the op under test does."""
    from ganfast import testing

    g = torch.Generator().manual_seed(3)
    big = torch.randn(testing.GRADCHECK_MAX_NUMEL + 1, generator=g, dtype=torch.float64)
    with pytest.raises(ValueError, match="gradcheck=True needs inputs of at most 4096 elements; the largest has 4097"):
        testing.check_op(torch.sin, torch.sin, [big], differentiable=[0], order=1, gradcheck=True)
    testing.check_op(torch.sin, torch.sin, [big], differentiable=[0], order=1)  # None: compared, not gradchecked
    calls = []
    small = torch.randn(64, generator=g, dtype=torch.float64)
    testing.check_op(lambda x: calls.append(1) or torch.sin(x), torch.sin, [small], differentiable=[0], order=1)
    assert len(calls) > 10  # gradcheck ran on the small input (one call per perturbation)
    # bf16: a reference fed the unrounded seed differs from the op's gradient by the seed's rounding alone;
    # with the rounded seed an exact op (x * 3) agrees to the last bit of the bf16 result
    x = torch.randn(256, generator=g).bfloat16()
    testing.check_op(lambda t: t * 3, lambda t: t * 3, [x], differentiable=[0], order=1, generator=g)
