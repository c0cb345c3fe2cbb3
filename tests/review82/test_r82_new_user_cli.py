"""review82 (a new user's review of 2026-12-07, REPORT.md here): following README.md and
docs/ from a fresh clone, as someone who has run Nacos and Consul.  Each test fails on
the code (or docs) of that day because of the finding it names, and passes once fixed.

- F1: ``meshreg instance-set SVC HOST:PORT --enabled false`` on an instance registered in
  a cluster other than DEFAULT (``--cluster C1``) answers "instance ... is not
  registered": it is registered; the command looked in cluster DEFAULT and says neither
  that nor ``--cluster`` (``meshreg deregister`` does: "(cluster DEFAULT) ... check ...
  --cluster"), and README's command table lists no ``--cluster`` for ``instance-set``.
- F2: ``meshreg ping --ready -s DOWN,UP`` exits 0 ("ready"): with several servers the
  readiness check asks whichever answers, so a probe or a rolling-restart loop given a
  list (or ``MESHREG_SERVERS`` naming the cluster) passes while a listed node is down;
  docs/OPERATIONS.md says "`meshreg ping` prints each node's version".
- F3: Ctrl-C (SIGINT) on ``meshreg config publish`` while its write is in flight prints
  "Aborted!" (exit 1) and nothing else, and the write may be (and in the reproduction
  is) applied: no "outcome unknown", no request id to re-send it with, which every other
  unknown outcome names (README, "Writes are idempotent").
- F4: docs/OPERATIONS.md "Replacing a dead node" says a client retries a refused config
  write "until its `timeout` (3 s by default)"; since review81 a config write's budget is
  10 s unless given (``DEFAULT_CONFIG_WRITE_TIMEOUT``; README, CONFIG.md).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import NodeProcess, free_port_pair, meshreg_cmd, raw_request, run_cli, wait_until

from meshreg import Client
from meshreg.client.defaults import DEFAULT_CONFIG_WRITE_TIMEOUT
from meshreg.configcenter.model import ConfigKey
from meshreg.configcenter.replication import responsible_config_node

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]


def test_instance_set_on_another_cluster_names_the_cluster(node: NodeProcess) -> None:
    """F1.  Before: ``NOT_FOUND ... update: instance 10.3.0.1:80 of service
    public/DEFAULT_GROUP/svcc is not registered`` (exit 1), about an instance listed by
    ``meshreg instances svcc`` as registered in cluster C1."""
    with Client([node.address], sessions=False) as c:
        c.register("svcc", "10.3.0.1", 80, cluster="C1")
        listed = run_cli("instances", "svcc", "-s", node.address)
        assert listed.returncode == 0 and "C1" in listed.stdout, listed.stdout + listed.stderr
        out = run_cli("instance-set", "svcc", "10.3.0.1:80", "--enabled", "false",
                      "-s", node.address)  # fmt: skip
        assert out.returncode == 1, out.stdout + out.stderr
        # what was looked up (cluster DEFAULT), or where it is (C1), or the flag to give
        assert "cluster" in out.stderr.lower() or "C1" in out.stderr, (
            f"the refusal names no cluster: {out.stderr.strip()}"
        )


def test_readme_command_table_lists_instance_set_cluster() -> None:
    """F1 (docs): the flag the error should point at is not in README's table."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `meshreg instance-set"))
    assert "--cluster" in row, row


def test_ping_ready_with_several_servers_does_not_pass_a_down_node(node: NodeProcess) -> None:
    """F2.  Before: ``pong from 127.0.0.1:P (...): ready``, exit 0, with the first listed
    server not running.  Expected (as ``etcdctl endpoint health --endpoints a,b,c``): each
    listed node checked (exit 1 while one does not answer or is not ready), or the list
    refused for ``--ready`` as ``config force-ready`` refuses one; at the very least the
    output says that a listed node did not answer."""
    down = f"127.0.0.1:{free_port_pair()}"  # nothing listens there
    for _ in range(3):  # the client's server order is random: every order must hold
        out = run_cli("ping", "--ready", "-s", f"{down},{node.address}")
        said = out.stdout + out.stderr
        assert out.returncode != 0 or down in said, (
            f"ping --ready exit 0 with {down} down, saying only: {said.strip()}"
        )


def _owned_by(members: list[str], owner: str) -> str:
    for i in range(1000):
        name = f"r82-{i}"
        if responsible_config_node(ConfigKey("public", "DEFAULT_GROUP", name), members) == owner:
            return name
    raise AssertionError("no data id owned by the node to stop")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as in a terminal (not inherited ignored)


def test_ctrl_c_on_a_config_write_in_flight_says_the_outcome_is_unknown(
    start_cluster: Callable[..., list[NodeProcess]],
) -> None:
    """F3.  A publish through n0 of a data id whose owner n1 is stopped (SIGSTOP): the
    write is sent and waits; Ctrl-C then.  Before: stderr ``Aborted!``, exit 1; after
    SIGCONT the write is applied.  Expected: the CLI says the write went out and may be
    applied, and names its request id (``--request-id``) to re-send it."""
    nodes = start_cluster(3, "--peer-timeout", "5")
    via, owner = nodes[0], nodes[1]
    data_id = _owned_by([n.address for n in nodes], owner.address)
    first = run_cli("config", "publish", data_id, "--content", "v1", "-s", via.address)
    assert first.returncode == 0, first.stderr

    def forwarded() -> int:
        stats = raw_request(via.port, {"v": 1, "id": 1, "op": "stats"})["result"]
        return int(stats["config"]["forwarded"])

    before = forwarded()
    owner.freeze()
    proc = None
    try:
        proc = subprocess.Popen(
            meshreg_cmd("config", "publish", data_id, "--content", "v2", "-s", via.address),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_default_sigint,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        wait_until(lambda: forwarded() > before, 20, 0.05, "the write forwarded to the owner")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        owner.signal(signal.SIGCONT)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode != 0
    said = err.lower()
    assert "unknown" in said or "request-id" in said or "request id" in said, (
        f"Ctrl-C on a write in flight said only: {err.strip()!r}"
    )


def test_operations_states_the_config_write_budget() -> None:
    """F4.  docs/OPERATIONS.md: "A client retries a refused write until its `timeout` (3 s
    by default)"; the budget is ``DEFAULT_CONFIG_WRITE_TIMEOUT`` (10 s) unless given."""
    text = " ".join((ROOT / "docs" / "OPERATIONS.md").read_text(encoding="utf-8").split())
    match = re.search(r"retries a refused write until its (.{0,80})", text)
    assert match is not None, "the sentence moved: check the stated budget by hand"
    stated = match.group(1)
    assert "3 s by default" not in stated, stated
    assert f"{DEFAULT_CONFIG_WRITE_TIMEOUT:g} s" in stated or "config_write_timeout" in stated, (
        stated
    )
