"""review14a F4, on the client's sans-IO session (fake clock): a push that arrives while a
(re)listen is in flight is forgotten when that listen fails, until the 30 s resync.

What the real-process test (test_r14a_listen_stop.py) sees as a race: the listener's only
node is stopped; the client's call times out there, so it fails over (to the same node) and
listens again; the node comes back, catching up, and publishes the change while the listen
is in flight; the listen then ends in UNAVAILABLE ("catching up ... retry shortly") or its
time budget: `failed()` in client/config_session.py logs "keeping revision N, retrying at
the next resync (30s)" and never pulls the revision the push announced (`lst.want`)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "client"))

from session_harness import Handle, Harness  # noqa: E402

from meshreg.client.actions import CallConfigListener  # noqa: E402
from meshreg.client.commands import ConfigListen  # noqa: E402
from meshreg.client.config_session import CONFIG_RESYNC_INTERVAL  # noqa: E402
from meshreg.client.configs import ConfigChanged  # noqa: E402
from meshreg.configcenter.model import ConfigKey, content_md5  # noqa: E402
from meshreg.errors import ErrorCode  # noqa: E402

KEY = ConfigKey("public", "DEFAULT_GROUP", "app.yaml")
FIELDS = {"namespace": KEY.namespace, "group": KEY.group, "data_id": KEY.data_id}
CATCHING_UP = "config_listen: this node is catching up on configs from a majority"


def _entry(revision: int, content: str) -> dict:
    return {**FIELDS, "content": content, "type": "yaml", "md5": content_md5(content),
            "revision": revision, "modified": 1700000000.5, "modified_by": "n1", "tags": {},
            "description": "", "deleted": False, "change": "publish", "origin": "n1"}  # fmt: skip


def _pings(h: Harness) -> None:
    h.answer_all("ping", {"epoch": 1, "version": "1", "address": h.connected})


def test_a_push_during_a_listen_that_then_fails_is_pulled_before_the_next_resync() -> None:
    h = Harness(servers=("a:1",))
    h.do(ConfigListen(KEY, lambda c, r: None, 3.0, Handle()))
    (first,) = h.unanswered("config_listen")
    h.reply(first, {"revision": 3, "entry": _entry(3, "a: 3"), "deleted": False})
    # the resync (every CONFIG_RESYNC_INTERVAL; a failover sends the same listen at once)
    interval = int(CONFIG_RESYNC_INTERVAL * 1000)
    while not h.unanswered("config_listen"):
        h.advance(100)
        _pings(h)
    # the node announces revision 5 while the listen is in flight ...
    h.push(ConfigChanged(KEY, 5, content_md5("a: 5")))
    # ... and refuses every attempt of it: it is still catching up
    start = h.now_ms
    while h.now_ms - start < 4000:
        h.fail_all("config_listen", ErrorCode.UNAVAILABLE, CATCHING_UP)
        h.advance(50)
        _pings(h)
    # the node is ready now: answer whatever the client asks for, for 5 s (not 30)
    start = h.now_ms
    while h.now_ms - start < 5000:
        for req in h.unanswered("config_get"):
            h.reply(req, _entry(5, "a: 5"))
        for req in h.unanswered("config_listen"):
            h.reply(req, {"revision": 5, "entry": _entry(5, "a: 5"), "deleted": False})
        h.advance(100)
        _pings(h)
    got = [(a.content, a.revision) for a in h.actions if isinstance(a, CallConfigListener)]
    assert got[-1] == ("a: 5", 5), (
        f"the push of revision 5 came while the listen was in flight; the listen failed "
        f"(UNAVAILABLE, catching up); 5 s after the node answers again the listener still "
        f"holds {got[-1]} (its calls: {got}); the next resync is {interval / 1000:g} s after "
        f"the last one. Logged: {h.logs()[-1:]}"
    )
