"""Performance: timing helpers, the tasks compared with the peers, and the report (issue 7).

``python -m bench.perf.report`` writes ``reports/perf.md``; ``tests/benchmarks`` (pytest-benchmark, run
by ``make perf`` only) time the same tasks one by one. Peers come from the ``compare`` extra.
"""
