"""The decisions, as pure functions: which version serves a request (``routing``),
whether a cached answer may be served (``freshness``), what the cache evicts
(``eviction``), what a purge may delete (``retention``), an alias's history and
how a change is written (``history``, ``alias_change``), a roll-out's steps
(``rollout``), and what a cache directory may trust (``cache_safety``).

No module here does I/O: each takes what it decides on as arguments and
returns the decision, so each is tested on its own (``tests/unit``); the
repository and the cache carry the decisions out. (``rollout`` also runs its
plan, through the ``write`` and ``check`` it is given.) A unit test
(``tests/unit/test_architecture.py``) keeps AWS, diskcache and the cache's
storage out of their imports.
"""
