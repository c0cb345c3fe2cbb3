"""review41: upgrading a live cluster from the version deployed before (d2a84dd).

The old version is checked out from this repository's own history into a temporary
directory (``git worktree add``); without the git history (a source tarball, a shallow
clone missing the commit) the tests are skipped, saying so."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NEW = str(ROOT)
OLD_COMMIT = "d2a84dd0fdb1d1e6c4fc97438ef211afd048e462"  # "deployed two days ago"


@pytest.fixture(scope="session")
def old_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A checkout of the previously deployed commit; PYTHONPATH for its nodes and clients."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git not installed: cannot check out the previous version")
    have = subprocess.run(
        [git, "-C", NEW, "cat-file", "-e", f"{OLD_COMMIT}^{{commit}}"], capture_output=True
    )
    if have.returncode != 0:
        pytest.skip(f"commit {OLD_COMMIT[:7]} not in this repository's history (shallow clone?)")
    target = tmp_path_factory.mktemp("r41") / "old"
    add = subprocess.run(
        [git, "-C", NEW, "worktree", "add", "--detach", str(target), OLD_COMMIT],
        capture_output=True,
        text=True,
    )
    if add.returncode != 0:
        pytest.skip(f"git worktree add failed: {add.stderr.strip()[:300]}")
    try:
        yield str(target)
    finally:
        subprocess.run([git, "-C", NEW, "worktree", "remove", "--force", str(target)],
                       capture_output=True)  # fmt: skip
        subprocess.run([git, "-C", NEW, "worktree", "prune"], capture_output=True)


def env_for(checkout: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": checkout, "PYTHONUNBUFFERED": "1"}


class VersionedNode:
    """A ``meshreg node`` of a given checkout, in its own process group, on fixed ports
    and a data dir kept across restarts (an upgrade: same ports, same data dir)."""

    def __init__(self, port: int, peers: list[str], data_dir: Path, log_dir: Path) -> None:
        self.port, self.peers, self.data_dir, self.log_dir = port, peers, data_dir, log_dir
        self.address = f"127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, checkout: str) -> VersionedNode:
        self.starts += 1
        args = [sys.executable, "-m", "meshreg", "node", "--host", "127.0.0.1",
                "--port", str(self.port), "--data-dir", str(self.data_dir)]  # fmt: skip
        for p in self.peers:
            args += ["--peer", p]
        log = open(self.log_dir / f"node-{self.port}-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            args, env=env_for(checkout), stdout=log, stderr=subprocess.STDOUT,
            cwd=str(self.log_dir), start_new_session=True,
        )  # fmt: skip
        log.close()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)


def cli(checkout: str, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshreg", *args], env=env_for(checkout), capture_output=True,
        text=True, timeout=timeout, cwd="/",
    )  # fmt: skip


def wait_ready(node: VersionedNode, timeout: float = 40.0) -> None:
    """Until the node answers ``ping`` (the current CLI; ``--ready`` where it says)."""
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        assert node.proc is not None
        if node.proc.poll() is not None:
            raise AssertionError(f"node {node.address} exited ({node.proc.returncode})")
        r = cli(NEW, "ping", "--ready", "-s", node.address, "--timeout", "2")
        out = r.stdout + r.stderr
        if r.returncode == 0:
            return
        time.sleep(0.2)  # a poll interval, not a wait for a condition
    raise AssertionError(f"node {node.address} not ready in {timeout}s: {out}")


def free_ports(n: int) -> list[int]:
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import free_port_pair

    return [free_port_pair() for _ in range(n)]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[VersionedNode]]:
    ports = free_ports(3)
    peers = [f"127.0.0.1:{p}" for p in ports]
    nodes = [VersionedNode(p, peers, tmp_path / f"d{i}", tmp_path) for i, p in enumerate(ports)]
    try:
        yield nodes
    finally:
        for n in nodes:
            n.kill()


FILL = r"""
import sys
from meshreg import Client
c = Client(sys.argv[1].split(","), namespace="big", timeout=20)
body = "x" * (1000 * 1024)
for i in range(int(sys.argv[2])):
    c.config_publish(f"blob-{i}.txt", body + str(i))
c.close()
"""

SMALL = r"""
import sys
from meshreg import Client
c = Client(sys.argv[1].split(","), namespace="big", timeout=10)
for i in range(4):
    try:
        c.config_publish(f"small-{i}.txt", "a: %d" % i)
        print("ok", i)
    except Exception as e:
        print("ERR", i, type(e).__name__, str(e)[:300])
c.close()
"""


def run_py(checkout: str, code: str, *args: str, timeout: float = 90.0) -> str:
    r = subprocess.run([sys.executable, "-c", code, *args], env=env_for(checkout),
                       capture_output=True, text=True, timeout=timeout, cwd="/")  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r.stdout


def test_upgrade_keeps_a_namespace_the_old_version_accepted_writable(
    old_checkout: str, cluster: list[VersionedNode]
) -> None:
    """F1: the deployed version had no per-namespace content limit (256 MiB per node);
    the new one defaults to 64 MiB per namespace. A namespace holding 70 MiB of config
    content (legal, acknowledged writes before the upgrade) must not turn read-only by a
    rolling upgrade with default settings: its 4-byte publishes are refused
    RESOURCE_EXHAUSTED after the upgrade (and, mid-upgrade, for the data ids a new node
    owns only)."""
    servers = ",".join(n.address for n in cluster)
    for n in cluster:
        n.start(old_checkout)
    for n in cluster:
        wait_ready(n)
    run_py(old_checkout, FILL, servers, "70")  # 70 x 1000 KiB in namespace "big"
    before = run_py(old_checkout, SMALL, servers)
    assert "ERR" not in before, before
    for n in cluster:  # README "Rolling restart": one node at a time, each once ready
        n.stop()
        n.start(NEW)
        wait_ready(n)
    after = run_py(old_checkout, SMALL, servers)  # apps are not redeployed with the nodes
    assert "ERR" not in after, (
        "writes the old cluster took are refused after a default rolling upgrade:\n" + after
    )


def test_ping_tells_an_old_node_from_a_new_one(
    old_checkout: str, cluster: list[VersionedNode]
) -> None:
    """F2: mid-upgrade, an operator checks which nodes run the new version and whether a
    rolled-back node is ready. `meshreg ping` names the same version for both
    ("meshreg 0.1.0") and calls an old node "ready" (it does not say; README: --ready exits
    0 "once that node is ready"), so neither the version nor the readiness it prints is
    known."""
    old, new = cluster[0], cluster[1]
    old.start(old_checkout)
    new.start(NEW)
    wait_ready(old)
    wait_ready(new)
    p_old = cli(NEW, "ping", "-s", old.address).stdout
    p_new = cli(NEW, "ping", "-s", new.address).stdout
    version = re.compile(r"\(meshreg ([^,]+),")
    v_old, v_new = version.search(p_old), version.search(p_new)
    assert v_old and v_new, (p_old, p_new)
    told_apart = v_old.group(1) != v_new.group(1) or "does not say" in p_old or "older" in p_old
    assert told_apart, f"old node: {p_old.strip()!r}; new node: {p_new.strip()!r}"


def test_rolling_upgrade_with_traffic_holds(
    old_checkout: str, cluster: list[VersionedNode], tmp_path: Path
) -> None:
    """What held in the lab (kept as a regression test): a 3-node cluster of the deployed
    version upgraded node by node as README "Rolling restart" says, under traffic from an
    old and a new client (session and per-instance providers, consumers with cache_dir,
    writes, CAS, gray, a listener): no write refused for good, no consumer callback with a
    partial list, listeners and reads never go backwards, every acknowledged version is
    in the history of every node afterwards (read with an old client)."""
    servers = ",".join(n.address for n in cluster)
    for n in cluster:
        n.start(old_checkout)
    for n in cluster:
        wait_ready(n)
    out = tmp_path / "wl"
    out.mkdir()
    script = str(Path(__file__).with_name("r41_workload.py"))
    loads = [
        subprocess.Popen(
            [sys.executable, script, tag, servers, str(out)],
            env=env_for(v),
            stdout=open(out / f"{tag}.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            cwd="/",
            start_new_session=True,
        )  # fmt: skip
        for tag, v in (("oldc", old_checkout), ("newc", NEW))
    ]
    try:

        def acks(tag: str) -> int:
            p = out / f"{tag}.jsonl"
            return p.read_text().count('"k": "ack"') if p.exists() else 0

        def wait_acks(n: int, timeout: float = 30.0) -> None:
            base = {t: acks(t) for t in ("oldc", "newc")}
            deadline = time.monotonic() + timeout
            while any(acks(t) < base[t] + n for t in base):
                for p in loads:
                    assert p.poll() is None, (out / "oldc.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "the workloads stopped writing"
                time.sleep(0.2)

        wait_acks(20)
        for n in cluster:
            n.stop()
            all_new_at = time.time()  # the last old node stopped (the workloads' clock)
            n.start(NEW)
            wait_ready(n)
            wait_acks(10)  # traffic through the mixed cluster before the next node
        wait_acks(20)
        (out / "STOP").touch()
        for p in loads:
            p.wait(60)
    finally:
        for p in loads:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
    problems = []
    acked: dict[str, dict[int, str]] = {}
    for tag in ("oldc", "newc"):
        evs = [json.loads(line) for line in (out / f"{tag}.jsonl").read_text().splitlines()]
        for e in evs:
            if e["k"] not in ("werr", "backwards", "short"):
                continue
            if e["k"] == "werr" and _old_owner_cas_conflict(e, all_new_at):
                warnings.warn(f"tolerated while a node ran {OLD_COMMIT[:7]}: {e}", stacklevel=1)
                continue
            problems.append(e)
        problems += [
            e for e in evs if e["k"] == "cb" and (e["n"], e["healthy"]) != (e["want"],) * 2
        ]
        listened = [e["rev"] for e in evs if e["k"] == "listen"]
        if any(b <= a for a, b in zip(listened, listened[1:], strict=False)):
            problems.append({"k": "listen not increasing", "tag": tag})
        for e in evs:
            if e["k"] == "ack":
                acked.setdefault(e["data_id"], {})[e["rev"]] = e["content"]
    assert not problems, problems[:10]

    def missing() -> list[tuple[str, str, list[int]]]:
        history = run_py(old_checkout, HISTORY, servers, *sorted(acked))
        out = []
        for address, per_id in json.loads(history).items():
            for data_id, items in per_id.items():
                kept: dict[int, str] = {}
                for rev, content in items:  # two versions of one revision (two owners for
                    kept.setdefault(rev, content)  # a moment): the winner comes first
                low = min(kept)
                lost = [r for r, c in acked[data_id].items() if r >= low and kept.get(r) != c]
                if lost:
                    out.append((address, data_id, lost[:5]))
        return out

    # a version acknowledged by a majority reaches the third node a moment later: read
    # until every node has them (CI on be66e42: one node lacked the last write's revision
    # when read at once; a version lost for good still fails here, after the deadline)
    deadline = time.monotonic() + 20
    first = lost = missing()
    while lost and time.monotonic() < deadline:
        time.sleep(0.5)
        lost = missing()
    assert not lost, (lost, "at first:", first)
    if first:  # (to tell a lag from a loss if it comes back)
        warnings.warn(f"acknowledged versions missing at first, then there: {first}", stacklevel=1)


def _old_owner_cas_conflict(event: dict[str, Any], all_new_at: float) -> bool:
    """A write refused as CONFLICT while a node still ran the old version: two owners for
    a moment while a node rejoins, the stale one lacking the other's acknowledged
    revision.  The old version answers so; this one catches up first (CHANGELOG, session
    32).  Two shapes: a compare-and-set naming a revision below the one the client read
    (CI and the lab: 1 run in 15); a plain publish that the stale owner made at a revision
    the other had acknowledged, which the merge rule gave to the acknowledged version ("made
    revision 11 ... but a concurrent version (written by ...) won that revision": CI,
    session 44, 1 run: the old node had not heard the owner's restart of 0.6 s, under its
    peer timeout).  Nothing acknowledged is lost either way (checked below)."""
    err = event.get("err", "")
    if event["t"] >= all_new_at or "CONFLICT" not in err:
        return False
    m = re.search(r"is at revision (\d+), not (\d+)", err)
    if event.get("data_id", "").startswith("cas-"):
        return m is not None and int(m.group(1)) < int(m.group(2))
    return re.search(r"made revision \d+ of .*, but a concurrent version .* won", err) is not None


HISTORY = r"""
import json, sys
from meshreg import Client
out = {}
for a in sys.argv[1].split(","):
    c = Client([a], timeout=10)
    out[a] = {d: [(h.revision, h.content) for h in c.config_history(d, limit=100)]
              for d in sys.argv[2:]}
    c.close()
print(json.dumps(out))
"""
