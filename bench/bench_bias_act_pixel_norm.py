"""pytest-benchmark suite for ``bias_act_pixel_norm``.

``pytest bench/bench_bias_act_pixel_norm.py --benchmark-only``.  The cases
are ``ganfast.bench.bias_act_pixel_norm.cases()``, the same table ``ganfast
bench --op bias_act_pixel_norm`` runs; every provider (eager, torch.compile,
each ganfast backend) is checked against float64 eager before it is timed.
On a CPU the large cases and unavailable backends skip with the reason.
"""

from ganfast.bench import suite

pytest_generate_tests = suite.generate("bias_act_pixel_norm")


def test_bias_act_pixel_norm(benchmark, bench_device, bench_peaks, bench_case):
    suite.run(benchmark, bench_device, bench_case, peaks=bench_peaks)
