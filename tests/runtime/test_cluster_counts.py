"""review37 F4: ``cluster``'s services and instances per member are node-wide figures
(every namespace's), so, as for ``stats``, only a key that may read everything gets
them; any other key gets 0 and ``counts`` false, and ``meshreg cluster`` shows "-".
A NodeRuntime with no sockets, on a fake clock."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
from click.testing import CliRunner

from meshreg import cli
from meshreg.config import NodeConfig
from meshreg.runtime.node import NodeRuntime
from meshreg.security.acl import OPEN, Access, Principal, Rule
from meshreg.wire.replies import encode_request
from meshreg.wire.results import check_cluster

START = 1764547200.0
TENANT = Principal("tenantA", (Rule("nsA", "*", "*", Access.ADMIN),))
OPS = Principal("ops", (Rule("*", "*", "*", Access.READ),))
NOTHING = Principal("pinger", ())


def cluster(rt: NodeRuntime, principal: Principal) -> dict[str, Any]:
    frames = rt._serve([b"c", b"", encode_request("cluster", 7)], START, principal)
    assert frames is not None
    reply: dict[str, Any] = msgpack.unpackb(frames[-1], raw=False)
    assert reply["ok"], reply
    return check_cluster(reply["result"])


def test_only_a_key_that_may_read_everything_gets_the_counts() -> None:
    rt = NodeRuntime(NodeConfig(host="127.0.0.1", port=7800), clock=lambda: START, epoch=1)
    for port in range(1, 5):
        body = encode_request("register", port, namespace="nsB", service="secret",
                              ip="10.0.0.1", port=port)  # fmt: skip
        rt._serve([b"b", b"", body], START)
    for principal in (OPEN, OPS):
        result = cluster(rt, principal)
        assert "counts" not in result
        assert [(m["services"], m["instances"]) for m in result["members"]] == [(1, 4)]
    for principal in (TENANT, NOTHING):
        result = cluster(rt, principal)
        assert result["counts"] is False and "config" in result
        assert [(m["services"], m["instances"]) for m in result["members"]] == [(0, 0)]


class _Client:
    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result

    def cluster(self) -> dict[str, Any]:
        return self.result


@pytest.mark.parametrize("counts", [True, False])
def test_meshreg_cluster_shows_no_counts_to_a_key_without_them(
    monkeypatch: pytest.MonkeyPatch, counts: bool
) -> None:
    member = {"id": "n1", "address": "127.0.0.1:7800", "state": "up", "self": True,
              "services": 0 if not counts else 3, "instances": 0 if not counts else 12,
              "lag": 0}  # fmt: skip
    result = {"node": "n1", "ready": True, "members": [member], **({} if counts else
              {"counts": False})}  # fmt: skip

    @contextlib.contextmanager
    def client(*args: Any, **kwargs: Any) -> Iterator[_Client]:
        yield _Client(result)

    monkeypatch.setattr(cli, "_client", client)
    out = CliRunner().invoke(cli.main, ["cluster"]).output
    row = next(line for line in out.splitlines() if line.startswith("*n1"))
    if counts:
        assert row.split()[2:5] == ["up", "3", "12"], out
        assert "read everything" not in out
    else:
        assert row.split()[2:5] == ["up", "-", "-"], out
        assert "shown only to a key that may read everything" in out
