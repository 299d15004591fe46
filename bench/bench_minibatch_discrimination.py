"""pytest-benchmark suite for ``minibatch_discrimination``.

Run with ``pytest bench/bench_minibatch_discrimination.py --benchmark-only``.  The cases are
``ganfast.bench.minibatch_discrimination.cases()``, the same table ``ganfast bench --op
minibatch_discrimination`` runs; every provider (eager, torch.compile, each ganfast backend)
is checked against float64 eager before it is timed.  On a CPU the large
cases and unavailable backends skip with the reason.
"""

from ganfast.bench import suite

pytest_generate_tests = suite.generate("minibatch_discrimination")


def test_minibatch_discrimination(benchmark, bench_device, bench_peaks, bench_case):
    suite.run(benchmark, bench_device, bench_case, peaks=bench_peaks)
