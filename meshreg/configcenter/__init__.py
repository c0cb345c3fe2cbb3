"""The configuration center (issue 12): versioned configs, majority-acknowledged writes.

``model`` and ``core`` (the sans-IO store), ``replication`` (the sans-IO write protocol),
``sqlite_store`` (persistence).  The node serves them through ``runtime/config_plane.py``,
the client through ``client/config_api.py`` and ``client/config_session.py``
(docs/CONFIG.md).
"""
