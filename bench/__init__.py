"""bench: measure whether explanation maps point at the lesions that drive a medical image classifier.

The Python API the CLI is a thin layer over: ``bench.run_suite(suite, out=...)`` runs a suite and
returns the tidy results table; ``bench.load_results(dir)`` reads one back; ``bench.score_maps({method: maps},
dataset, ids=...)`` scores maps made anywhere into the same table (``bench score``). Stages live in
``bench.data``, ``bench.models``, ``bench.train``, ``bench.attribution``, ``bench.metrics``,
``bench.sweep`` and ``bench.report``.
"""

from bench.version import VERSION as __version__

__all__ = ["run_suite", "load_results", "score_maps", "__version__"]


def __getattr__(name):  # lazy: `import bench` stays cheap (no torch) until the API is used
    if name in ("run_suite", "load_results"):
        from bench import sweep

        return getattr(sweep, name)
    if name == "score_maps":
        from bench.sweep.score_maps import score_maps

        return score_maps
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
