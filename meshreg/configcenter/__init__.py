"""The configuration center (issue 12): versioned configs, majority-acknowledged writes.

Foundations only so far (docs/CONFIG.md, "Not wired yet"): ``model`` and ``core`` (the
sans-IO store), ``replication`` (the sans-IO write protocol), ``sqlite_store``
(persistence).  Nothing in the node, client or CLI uses them yet.
"""
