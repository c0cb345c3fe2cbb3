"""review25: a one-namespace lab. Every node of a scenario runs on 127.0.0.1 inside a
private network namespace, each node process with a group id of its own, so that
``iptables -m owner --gid-owner`` can drop what one node sends to another's peer ports
(P+2, P+3) while every client (the driver, root's group) still reaches every node. The
scenario itself (nodes, clients, faults, sampling) runs in a driver process started in
the namespace; the test reads its verdict (one JSON line).

Cleanup: the driver kills its nodes on every exit path (and they die with it:
PR_SET_PDEATHSIG); the lab then kills whatever is left in the namespace and deletes it.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from helpers import HOST, NodeProcess, meshreg_cmd  # noqa: E402

_n = itertools.count(1)


def iptables() -> str | None:
    for name in ("iptables-legacy", "iptables"):
        path = shutil.which(name) or next(
            (p for d in ("/usr/sbin", "/sbin") if os.path.exists(p := f"{d}/{name}")), None
        )
        if path:
            return path
    return None


def unavailable_reason() -> str | None:
    if sys.platform != "linux":
        return "needs Linux network namespaces"
    if os.geteuid() != 0:
        return "needs root (ip netns, iptables)"
    if shutil.which("ip") is None:
        return "needs iproute2"
    if iptables() is None:
        return "needs iptables"
    return None


def _run(*argv: str, check: bool = True, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")
    return r


class NsLab:
    def __init__(self) -> None:
        self.ns = f"r25lab{os.getpid()}x{next(_n)}"

    def __enter__(self) -> NsLab:
        _run("ip", "netns", "add", self.ns)
        try:
            _run("ip", "-n", self.ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, timeout: float = 10.0) -> None:
        """Kill what runs in the namespace, wait (``timeout`` at most) until nothing does,
        then delete it (review35: one was left behind once, its processes still there
        when it was deleted right after the kill).  A namespace that outlives this is
        said on stderr, named, so that a leak is never silent."""
        deadline = time.monotonic() + timeout
        while True:
            pids = _run("ip", "netns", "pids", self.ns, check=False).stdout.split()
            if not pids or time.monotonic() > deadline:
                break
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
            time.sleep(0.05)  # (SIGKILL is delivered asynchronously: poll for the exits)
        while True:
            _run("ip", "netns", "del", self.ns, check=False)
            listed = _run("ip", "netns", "list", check=False).stdout.split()
            if self.ns not in listed:
                return
            if time.monotonic() > deadline:
                print(f"nslab: network namespace {self.ns} could not be deleted (processes "
                      f"{pids} in it); delete it with `ip netns del {self.ns}`",
                      file=sys.stderr)  # fmt: skip
                return
            time.sleep(0.05)

    def drive(self, script: Path, *args: str, timeout: float) -> dict[str, Any]:
        """Run ``script`` (a driver) in the namespace; its last stdout line is JSON."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent), str(HERE),
                                              os.environ.get("PYTHONPATH", "")])}  # fmt: skip
        try:
            p = subprocess.run(
                ["ip", "netns", "exec", self.ns, sys.executable, str(script), *args],
                capture_output=True, text=True, timeout=timeout, env=env,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:  # keep what it said (review35: lost once)
            out, err = (_text(s) for s in (exc.stdout, exc.stderr))
            raise AssertionError(
                f"driver {script.name} ran past {timeout:g}s:\n{out[-3000:]}\n{err[-5000:]}"
            ) from None
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            raise AssertionError(
                f"driver gave no verdict (rc {p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"  # noqa: E501
            )
        out = json.loads(lines[-1])
        out["_stderr"] = p.stderr[-4000:]
        return out


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


# -- inside the namespace (the driver) ----------------------------------------------------
def _pdeath() -> None:
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


class GidNode(NodeProcess):
    """A node process running with group id ``gid`` (its packets match --gid-owner)."""

    def __init__(self, *extra: str, port: int, gid: int) -> None:
        super().__init__(*extra, port=port)
        self.gid = gid

    def launch(self) -> NodeProcess:
        fd, self.log_path = tempfile.mkstemp(prefix="meshreg-node-", suffix=".log")
        gid = self.gid

        def pre() -> None:
            _pdeath()
            os.setgroups([])
            os.setgid(gid)

        self.proc = subprocess.Popen(
            meshreg_cmd("node", "--host", HOST, "--port", str(self.port), *self.extra),
            stdout=fd, stderr=fd, env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=pre,
        )  # fmt: skip
        os.close(fd)
        return self


_marks = itertools.count(0x2501)


def block(src: GidNode, dst: GidNode) -> None:
    """Kill the flows ``src`` opens to ``dst``'s peer ports (P+2, P+3), both directions:
    src's packets to them are dropped, and the connection is marked (conntrack) so dst's
    packets on it are dropped too. With ``block(dst, src)``, the pair is cut both ways."""
    ipt, mark = iptables() or "iptables", str(next(_marks))
    _run(ipt, "-A", "OUTPUT", "-p", "tcp", "-m", "owner", "--gid-owner", str(src.gid),
         "--dport", f"{dst.port + 2}:{dst.port + 3}", "-j", "CONNMARK", "--set-mark", mark)  # fmt: skip  # noqa: E501
    _run(ipt, "-A", "OUTPUT", "-m", "connmark", "--mark", mark, "-j", "DROP")


def cut(a: GidNode, b: GidNode) -> None:
    block(a, b)
    block(b, a)


def heal() -> None:
    _run(iptables() or "iptables", "-F", "OUTPUT")
