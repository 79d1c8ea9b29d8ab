"""The sweep's stage runners, one module per stage: :mod:`.train`, :mod:`.explain`, :mod:`.score`, :mod:`.sanity`.

Each exposes ``run(spec, inputs, out, label)``: ``spec`` the job's resolved configuration (a dict), ``inputs``
the folders of the done jobs it reads (``{stage: Path}``), ``out`` the folder it writes, ``label`` the job's
name for messages. :func:`bench.sweep.jobs.execute` calls them. A stage's code version
(:func:`bench.sweep.sources.code_version`) hashes the modules its runner imports, so keep each runner's
imports to what that stage needs (this package's ``__init__`` imports nothing).
"""
