"""pytest-benchmark suite for ``self_attention2d``: ``pytest bench/bench_self_attention2d.py --benchmark-only``.

The cases are ``ganfast.bench.self_attention2d.cases()``, the same table
``ganfast bench --op self_attention2d`` runs (each shape twice: against the
naive bmm + softmax + bmm form and against SDPA); every provider (eager, torch.compile, each
ganfast backend) is checked against float64 eager before it is timed.  On a
CPU the large cases and unavailable backends skip with the reason.
"""

from ganfast.bench import suite

pytest_generate_tests = suite.generate("self_attention2d")


def test_self_attention2d(benchmark, bench_device, bench_peaks, bench_case):
    suite.run(benchmark, bench_device, bench_case, peaks=bench_peaks)
