"""Shared test setup.

Without a CUDA device every Triton kernel runs under the CPU interpreter,
which Triton decides when a kernel is *defined*: so TRITON_INTERPRET is set
here, before any ganfast module that defines kernels is imported.
"""

import os
import re


def _has_cuda() -> bool:
    import torch  # importing torch defines no Triton kernel, so this is early enough

    return torch.cuda.is_available()


if not _has_cuda():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

HAS_CUDA = torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none is visible to torch")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from a fixed seed; inputs are still fresh random draws, never zeros."""
    torch.manual_seed(0x6A9F)
    yield


@pytest.fixture(autouse=True, scope="session")
def _no_tf32():
    """Full float32 in cuDNN convolutions and cuBLAS matmuls on a GPU: the float32 tolerances
    (1e-5) are for float32 arithmetic, and TF32 (10-bit mantissa) is ~3e-4 off."""
    if torch.cuda.is_available():
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    yield


@pytest.fixture
def gen():
    """A private generator for a test's random inputs."""
    g = torch.Generator()
    g.manual_seed(1234)
    return g


def triton_devices():
    """Devices the triton backend can be tested on here."""
    return ["cuda"] if HAS_CUDA else ["cpu"]


# -- backends from the registry ---------------------------------------------------------
#
# A test that takes a ``backend`` argument (and optionally ``device``) is run
# once per backend its op has in ganfast._backend.OPS: the op is the test
# module's ``OP``, or an ``@pytest.mark.op("name")`` on the test.  A backend
# that cannot run here is still collected, and skipped with the registry's
# reason, so adding a backend to an op's row tests it everywhere (and says
# where it could not run) without editing a test file.  A test marked
# ``registered_op`` calls the op's torch.library op itself (opcheck): the
# ``aten`` backend runs no registered op, so it is left out of that test's
# parameters (its numbers and derivatives are checked by every other test).


def pytest_configure(config):
    config.addinivalue_line("markers", "op(name): the op whose registered backends parametrise `backend`")
    config.addinivalue_line("markers", "registered_op: the test calls the registered torch.library op directly "
                                       "(backends that run no registered op, `aten`, are not parametrised)")


def _op_of(metafunc):
    marker = metafunc.definition.get_closest_marker("op")
    if marker is not None:
        return marker.args[0]
    return getattr(metafunc.module, "OP", None)


def _parametrized_by_hand(metafunc, name):
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        if name in names:
            return True
    return False


def backend_params(op, with_device=True, registered_only=False):
    """``pytest.param``s of ``op``'s registered backends (``(backend, device)`` pairs with ``with_device``).

    ``registered_only``: only the backends that run through the op's
    registered torch.library op (all but ``aten``).
    """
    from ganfast import testing

    params = []
    for case in testing.backend_cases(op):
        if registered_only and case.backend == "aten":
            continue
        marks = [pytest.mark.gpu] if case.device == "cuda" else []
        if not case.availability:
            marks.append(pytest.mark.skip(
                reason=f"{case.backend} cannot run {op} on {case.device} here: {case.availability.reason}"))
        values = (case.backend, case.device) if with_device else (case.backend,)
        params.append(pytest.param(*values, id=case.backend, marks=marks))
    return params


def pytest_generate_tests(metafunc):
    if "backend" not in metafunc.fixturenames or _parametrized_by_hand(metafunc, "backend"):
        return
    op = _op_of(metafunc)
    if op is None:
        return
    with_device = "device" in metafunc.fixturenames
    registered_only = metafunc.definition.get_closest_marker("registered_op") is not None
    metafunc.parametrize("backend,device" if with_device else "backend",
                         backend_params(op, with_device, registered_only))


def runnable_backends(op):
    """The backends of ``op`` that can run here, for tests that loop over them."""
    from ganfast import testing

    return testing.runnable_backends(op)


# -- skips must be explained by the machine -----------------------------------------------
#
# Under CI (CI=true) a skipped test fails the run unless its reason is the
# missing GPU (a `gpu`-marked test, a CUDA-only backend, an error that is only
# raised without a device): a missing dependency, an unset environment
# variable or a dataset CI did not install would otherwise pass silently.
# `-ra` in the README's test command lists every skip with its reason.

_MACHINE_REASON = re.compile(r"cuda|gpu|ptxas|device", re.IGNORECASE)
_UNEXPLAINED_SKIPS = []


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not _MACHINE_REASON.search(reason):
            _UNEXPLAINED_SKIPS.append((report.nodeid, reason))


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") and _UNEXPLAINED_SKIPS:
        lines = "\n".join(f"  {nodeid}: {reason}" for nodeid, reason in _UNEXPLAINED_SKIPS)
        print(f"\nCI: {len(_UNEXPLAINED_SKIPS)} test(s) skipped for a reason other than the missing GPU "
              f"(install what they need, or fix them):\n{lines}")
        session.exitstatus = 1
