"""The client's defaults, with units: apart from client.py and config_archive.py, so that
the CLI can show them in its options without importing those (bench/startup.py)."""

from __future__ import annotations

from meshreg.configcenter.model import MAX_HISTORY_PAGE

DEFAULT_BEAT_INTERVAL = 5.0  # s; the seed's provider beat period
BEAT_INTERVAL_BOUNDS = (0.05, 3600.0)  # s; a typo must not beat in a loop (1e-9) or never
DEFAULT_TIMEOUT = 3.0  # s; a call's whole budget, across retries and servers
DEFAULT_ATTEMPT_TIMEOUT = 1.0  # s; one server's time to answer before the next is tried
# s; a config write's whole budget unless given (at least ``timeout``): a data id's owner
# that stops (SIGSTOP, a VM pause) holds its writes until the nodes stop counting it
# (peer_timeout, 3 s), then its successor makes them.  With 3 s, 2 of 3 writers failed
# with an unknown outcome while an owner was stopped; with 8 s none did, the slowest write
# took 3.24 s (a fault review of 2026-12-07).  etcdctl's command timeout is 5 s.
DEFAULT_CONFIG_WRITE_TIMEOUT = 10.0
DEFAULT_RESYNC_INTERVAL = 10.0  # s; cached services are re-pulled this often (backstop)
DEFAULT_AVOID_FAILED_FOR = 10.0  # s; call() steers clear of an instance that just failed

# Export and import of a namespace's configs (client/config_archive.py)
DEFAULT_EXPORT_HISTORY = 100  # past versions exported per data id (the default retention)
MAX_EXPORT_HISTORY = MAX_HISTORY_PAGE - 1  # one history page per data id, current included
ON_CONFLICT = ("abort", "skip", "overwrite")  # what an import does with an existing data id

# What a read's "no reply" error says of the client's own retries: true of a process that
# keeps its client, not of a one-shot CLI command (it leaves it out: cli._fail)
RETRYING_IN_BACKGROUND = " (the client keeps trying them in the background)"
