"""Performance: timing helpers, the tasks compared with the peers, and the report (issue 7).

``python -m bench.perf.report`` writes ``reports/perf.md``; ``tests/benchmarks`` (pytest-benchmark, run
by ``make perf`` only) time the same tasks one by one. Peers come from the ``compare`` extra.
Stand-alone timing scripts: ``python -m bench.perf.method_timing`` (every attribution method against
one forward + backward pass) and ``python -m bench.perf.metric_throughput`` (the metrics on many maps).
"""
