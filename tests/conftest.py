"""Shared test setup.

Without a CUDA device every Triton kernel runs under the CPU interpreter,
which Triton decides when a kernel is *defined*: so TRITON_INTERPRET is set
here, before any ganfast module that defines kernels is imported.
"""

import os


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


@pytest.fixture
def gen():
    """A private generator for a test's random inputs."""
    g = torch.Generator()
    g.manual_seed(1234)
    return g


def triton_devices():
    """Devices the triton backend can be tested on here."""
    return ["cuda"] if HAS_CUDA else ["cpu"]
