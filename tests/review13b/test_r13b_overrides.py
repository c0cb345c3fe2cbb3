"""review13b: operator overrides from outside (real processes, CLI and client)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from helpers import NodeProcess, run_cli, start_all, wait_until
from util13b import (
    cluster_nodes,
    procs_fixture,  # noqa: F401 (the procs fixture)
    ready,
    restart,
    views,
)

from meshreg import Client

FAST = {"beat_interval": 0.3, "timeout": 5.0, "attempt_timeout": 1.0}


def test_drain_survives_kill9_of_all_nodes_right_after_it_returns(
    procs: list[NodeProcess], tmp_path: Path
) -> None:
    dirs = [str(tmp_path / f"d{i}") for i in range(3)]
    nodes = cluster_nodes(3, data_dirs=dirs)
    procs.extend(nodes)
    start_all(nodes)
    wait_until(lambda: ready(nodes), timeout=30, what="cluster")
    a, b, c = nodes
    with Client([a.address], **FAST) as p:
        p.register("k9", "10.9.0.1", 1)
        p.register("k9", "10.9.0.2", 2)
        wait_until(lambda: all(len(v) == 2 for v in views(nodes, "k9")), timeout=10)
        out = run_cli("instance-set", "k9", "10.9.0.1:1", "--enabled", "false", "-s", b.address)
        assert out.returncode == 0, out.stderr
        for n in nodes:
            n.signal(signal.SIGKILL)
        # an override of an instance never registered, made via c right before the kill
    restart(nodes)
    with Client([c.address], **FAST) as p2:
        p2.register("k9", "10.9.0.1", 1)
        p2.register("k9", "10.9.0.2", 2)
        wait_until(lambda: all(len(v) == 2 for v in views(nodes, "k9")), timeout=10)
        got = views(nodes, "k9")
        assert [v["10.9.0.1:1"][0] for v in got] == [False] * 3, got


def test_drain_of_deregistered_instance_expires_after_ttl_only(
    procs: list[NodeProcess], tmp_path: Path
) -> None:
    cfg = tmp_path / "n.toml"
    cfg.write_text("[health]\noverride_ttl = 4\n")
    dirs = [str(tmp_path / f"d{i}") for i in range(3)]
    nodes = cluster_nodes(3, "--config", str(cfg), data_dirs=dirs)
    procs.extend(nodes)
    start_all(nodes)
    wait_until(lambda: ready(nodes), timeout=30, what="cluster")
    st = [Client([n.address], timeout=2) for n in nodes]
    try:
        with Client([nodes[0].address], **FAST) as op:
            op.register("ghost", "10.8.0.1", 1)
            op.set_instance("ghost", "10.8.0.1", 1, enabled=False)
            op.deregister("ghost", "10.8.0.1", 1)
            t0 = time.monotonic()
            wait_until(lambda: all(s.stats()["usage"]["overrides"] >= 1 for s in st), timeout=10)
            # within the ttl a provider back finds its drain
            wait_until(
                lambda: sum(s.stats()["usage"]["overrides_expired"] for s in st) >= 1,
                timeout=25,
                what="the override of an instance registered nowhere to expire",
            )
            took = time.monotonic() - t0
            assert took >= 3.5, took
            op.register("ghost", "10.8.0.1", 1)
            wait_until(
                lambda: (
                    [v.get("10.8.0.1:1", (None,))[0] for v in views(nodes, "ghost")] == [True] * 3
                ),
                timeout=10,
                what=f"instance enabled everywhere after the expiry: {views(nodes, 'ghost')}",
            )
    finally:
        for s in st:
            s.close()


def test_watcher_never_sees_drained_instance_enabled_across_reregistration(
    procs: list[NodeProcess],
) -> None:
    import json
    import threading

    from helpers import meshreg_cmd

    nodes = cluster_nodes(3)
    procs.extend(nodes)
    start_all(nodes)
    wait_until(lambda: ready(nodes), timeout=30, what="cluster")
    a, b, c = nodes
    watch = subprocess.Popen(
        meshreg_cmd("watch", "wch", "--json", "-s", c.address),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[dict] = []

    def read() -> None:
        assert watch.stdout is not None
        for line in watch.stdout:
            lines.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        with Client([a.address], **FAST) as p:
            p.register("wch", "10.3.0.1", 1)
            p.register("wch", "10.3.0.2", 2)
            wait_until(lambda: any(len(x["instances"]) == 2 for x in lines), timeout=15)
            with Client([b.address], **FAST) as op:
                op.set_instance("wch", "10.3.0.1", 1, enabled=False)

            def drained_line() -> int | None:
                for k, x in enumerate(lines):
                    for i in x["instances"]:
                        if i["port"] == 1 and i["enabled"] is False:
                            return k
                return None

            wait_until(lambda: drained_line() is not None, timeout=10, what="watch: drained")
            first = drained_line()
            for _ in range(5):
                p.deregister("wch", "10.3.0.1", 1)
                p.register("wch", "10.3.0.1", 1, weight=2.0)
            with Client([c.address], **FAST) as consumer:
                wait_until(
                    lambda: (
                        {i.address: i.weight for i in consumer.instances("wch", False)}.get(
                            "10.3.0.1:1"
                        )
                        == 2.0
                    ),
                    timeout=10,
                )
                picks = {consumer.select("wch").address for _ in range(100)}

            def last_pushed() -> bool:  # the last registration's push (weight 2.0) is in
                for i in lines[-1]["instances"] if lines else ():
                    if i["port"] == 1:
                        return bool(i["weight"] == 2.0)
                return False

            wait_until(last_pushed, timeout=10, what="watch: the last registration pushed")
            assert first is not None
            bad = [
                (k, i)
                for k, x in enumerate(lines[first:])
                for i in x["instances"]
                if i["port"] == 1 and i["enabled"] is not False
            ]
            assert not bad, bad[:3]
            assert picks == {"10.3.0.2:2"}, picks
    finally:
        watch.kill()
        watch.wait(5)
