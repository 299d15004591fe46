"""pytest-benchmark suite for ``upfirdn2d``.

``pytest bench/bench_upfirdn2d.py --benchmark-only``.  The cases
are ``ganfast.bench.upfirdn2d.cases()``, the same table ``ganfast
bench --op upfirdn2d`` runs; every provider (eager, torch.compile,
each ganfast backend) is checked against float64 eager before it is timed.
On a CPU the large cases and unavailable backends skip with the reason.
"""

from ganfast.bench import suite

pytest_generate_tests = suite.generate("upfirdn2d")


def test_upfirdn2d(benchmark, bench_device, bench_peaks, bench_case):
    suite.run(benchmark, bench_device, bench_case, peaks=bench_peaks)
