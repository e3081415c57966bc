"""The decisions, as pure functions: which version serves a request (``routing``),
whether a cached answer may be served (``freshness``), what the cache evicts
(``eviction``), what a purge may delete (``retention``), an alias's history and
how a change is written (``history``, ``alias_change``), and a roll-out's steps
(``rollout``).

No module here does I/O: each takes what it decides on as arguments and
returns the decision, so each is tested on its own (``tests/unit``); the
repository and the cache carry the decisions out.
"""
