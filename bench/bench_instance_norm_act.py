"""pytest-benchmark suite for ``instance_norm_act``.

``pytest bench/bench_instance_norm_act.py --benchmark-only``.  The cases are
``ganfast.bench.instance_norm_act.cases()``, the same table ``ganfast bench
--op instance_norm_act`` runs; every provider (eager, torch.compile, each
ganfast backend) is checked against float64 eager before it is timed.  On a
CPU the large cases and unavailable backends skip with the reason.
"""

from ganfast.bench import suite

pytest_generate_tests = suite.generate("instance_norm_act")


def test_instance_norm_act(benchmark, bench_device, bench_peaks, bench_case):
    suite.run(benchmark, bench_device, bench_case, peaks=bench_peaks)
