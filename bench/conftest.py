"""pytest-benchmark suites: ``pytest bench/ --benchmark-only``.

The suites are named ``bench_<op>.py`` so that pytest's default patterns
never collect them; this conftest collects them only when pytest is pointed
at ``bench/`` (or a file in it), so neither ``pytest tests`` nor a bare
``pytest`` at the root runs a benchmark.  Nothing here touches a device until
a benchmark runs.
"""

from pathlib import Path

import pytest
import torch

BENCH_DIR = Path(__file__).resolve().parent


def _pointed_at_bench(config) -> bool:
    base = Path(config.invocation_params.dir)
    for arg in config.args:
        path = (base / arg.split("::")[0]).resolve()
        if path == BENCH_DIR or BENCH_DIR in path.parents:
            return True
    return False


def pytest_collect_file(parent, file_path):
    if (
        file_path.suffix == ".py"
        and file_path.name.startswith("bench_")
        and not parent.session.isinitpath(file_path)  # named on the command line: pytest collects it itself
        and _pointed_at_bench(parent.config)
    ):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture(scope="session")
def bench_device():
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


@pytest.fixture(scope="session")
def bench_peaks(bench_device):
    """Copy bandwidth and bf16 matmul rate, measured once per session."""
    from ganfast.bench.peak import measure_peaks

    return measure_peaks(bench_device, quick=bench_device.type == "cpu")


def pytest_benchmark_update_machine_info(config, machine_info):
    """Versions and device beside every saved result."""
    from ganfast.bench.report import collect_meta

    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    machine_info["ganfast"] = collect_meta(device)
