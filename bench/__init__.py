"""cumulo's benchmarks: one command per workload, measured side by side with its peers.

Run one with ``.venv/bin/python -m bench.<name>`` (or ``python bench/<name>.py``) from the
repository root, or all of them with ``python -m bench.run_all``. See
``docs/how-to/benchmarks.md``.
"""
