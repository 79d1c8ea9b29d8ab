"""bench: measure whether explanation maps point at the lesions that drive a medical image classifier.

The Python API the CLI is a thin layer over: ``bench.run_suite(suite, out=...)`` runs a suite and
returns the tidy results table; ``bench.load_results(dir)`` reads one back. Stages live in
``bench.data``, ``bench.models``, ``bench.train``, ``bench.attribution``, ``bench.metrics``,
``bench.sweep`` and ``bench.report``.
"""

from bench.version import VERSION as __version__

__all__ = ["run_suite", "load_results", "__version__"]


def __getattr__(name):  # lazy: `import bench` stays cheap (no torch) until the API is used
    if name in ("run_suite", "load_results"):
        from bench import sweep

        return getattr(sweep, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
