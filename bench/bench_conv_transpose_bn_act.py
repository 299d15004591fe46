"""pytest-benchmark suite for ``conv_transpose_bn_act``: ``pytest bench/bench_conv_transpose_bn_act.py --benchmark-only``.

The cases are ``ganfast.bench.conv_transpose_bn_act.cases()``, the same table ``ganfast
bench --op conv_transpose_bn_act`` runs; every provider (eager, torch.compile, each
ganfast backend) is checked against float64 eager before it is timed.  On a
CPU the large cases and unavailable backends skip with the reason.
"""

from ganfast.bench import suite

pytest_generate_tests = suite.generate("conv_transpose_bn_act")


def test_conv_transpose_bn_act(benchmark, bench_device, bench_peaks, bench_case):
    suite.run(benchmark, bench_device, bench_case, peaks=bench_peaks)
