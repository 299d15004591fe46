"""pytest-benchmark suite for ``modulated_conv2d``.

``pytest bench/bench_modulated_conv2d.py --benchmark-only``.  The cases
are ``ganfast.bench.modulated_conv2d.cases()``, the same table ``ganfast
bench --op modulated_conv2d`` runs; every provider (eager, torch.compile,
each ganfast backend) is checked against float64 eager before it is timed.
On a CPU the large cases and unavailable backends skip with the reason.
"""

from ganfast.bench import suite

pytest_generate_tests = suite.generate("modulated_conv2d")


def test_modulated_conv2d(benchmark, bench_device, bench_peaks, bench_case):
    suite.run(benchmark, bench_device, bench_case, peaks=bench_peaks)
