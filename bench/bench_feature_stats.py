"""pytest-benchmark suite for ``feature_stats``: ``pytest bench/bench_feature_stats.py --benchmark-only``.

The cases are ``ganfast.bench.feature_stats.cases()``, the same table ``ganfast
bench --op feature_stats`` runs; every provider (eager, torch.compile, each
ganfast backend) is checked against float64 eager before it is timed.  On a
CPU the large cases and unavailable backends skip with the reason.
"""

from ganfast.bench import suite

pytest_generate_tests = suite.generate("feature_stats")


def test_feature_stats(benchmark, bench_device, bench_peaks, bench_case):
    suite.run(benchmark, bench_device, bench_case, peaks=bench_peaks)
