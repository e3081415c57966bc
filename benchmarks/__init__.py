"""Benchmarks of versioned_async against its peers, on a local moto server.

``python -m benchmarks`` starts ``moto_server`` and a latency proxy on
127.0.0.1, runs every scenario (``--only`` picks some), prints a markdown
table per scenario and writes ``benchmarks/results/latest.json``. See
``python -m benchmarks --help``.
"""
