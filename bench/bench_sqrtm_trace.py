"""pytest-benchmark suite for ``sqrtm_trace``: ``pytest bench/bench_sqrtm_trace.py --benchmark-only``.

The cases are ``ganfast.bench.sqrtm.cases()``, the same table ``ganfast
bench --op sqrtm_trace`` runs; every provider (eager, torch.compile, each
ganfast backend) is checked against float64 eager before it is timed.  On a
CPU the large cases and unavailable backends skip with the reason.
"""

from ganfast.bench import suite

pytest_generate_tests = suite.generate("sqrtm_trace")


def test_sqrtm_trace(benchmark, bench_device, bench_peaks, bench_case):
    suite.run(benchmark, bench_device, bench_case, peaks=bench_peaks)
