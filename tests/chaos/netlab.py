"""A small network lab for fault tests: private network namespaces joined by a bridge.

Layout (every name carries a unique prefix, ``mrchaos<pid>x<n>``)::

    <tag>-sw   the switch: bridge br0 with ports p1..pN   (the host's namespace is untouched)
    <tag>-n1   eth0 10.77.0.1/24  <-veth->  p1 in <tag>-sw
    <tag>-n2   eth0 10.77.0.2/24  <-veth->  p2
    ...

(``Lab(n, workdir, ipv6=True)``: eth0 fd77::1/64, fd77::2/64, ... instead.)

Faults: ``link(i, up)`` sets switch port i down/up (node i is cut off from every other
node, its own processes still reach it over its own address); ``impair(...)`` sends each
node namespace's eth0 egress to NFQUEUE (iptables) and runs ``impair.py`` there (loss and
delay in user space, since this kernel has no sch_netem); processes are started inside a
namespace with ``spawn`` and paused, resumed or killed by their pid.

Cleanup: ``close()`` kills every process the lab started (by pid, then whatever is left
inside its namespaces, by pid) and deletes its namespaces; it is registered with atexit
and is idempotent. ``sweep_stale()`` removes namespaces left by a lab whose process is gone
(a crashed or SIGKILLed earlier run). Every command runs with a timeout.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

PREFIX = "mrchaos"
SUBNET = "10.77.0"
SUBNET6 = "fd77"  # a unique local prefix: fd77::1, fd77::2, ...
HERE = Path(__file__).resolve().parent
_counter = itertools.count(1)
_PR_SET_PDEATHSIG = 1


class LabError(RuntimeError):
    pass


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


def run(*argv: str, timeout: float = 10.0, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def iptables_command() -> str | None:
    """The iptables binary to use (legacy first: NFQUEUE and statistic are xtables here)."""
    for name in ("iptables-legacy", "iptables"):
        path = shutil.which(name) or next(
            (p for d in ("/usr/sbin", "/sbin") if os.path.exists(p := f"{d}/{name}")), None
        )
        if path:
            return path
    return None


def unavailable_reason() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if sys.platform != "linux":
        return "chaos suite needs Linux network namespaces"
    if os.geteuid() != 0:
        return "chaos suite needs root (ip netns, veth, bridge); run as root to include it"
    if shutil.which("ip") is None:
        return "chaos suite needs iproute2 (the 'ip' command), which is not installed"
    probe = f"{PREFIX}{os.getpid()}probe"
    try:
        r = run("ip", "netns", "add", probe, check=False)
        if r.returncode != 0:
            return f"chaos suite: 'ip netns add' does not work here: {r.stderr.strip()}"
        r = run("ip", "-n", probe, "link", "add", "br0", "type", "bridge", check=False)
        if r.returncode != 0:
            return f"chaos suite: cannot create a bridge: {r.stderr.strip()}"
        r = run(
            "ip",
            "-n",
            probe,
            "link",
            "add",
            "name",
            "va",
            "type",
            "veth",
            "peer",
            "name",
            "vb",
            check=False,
        )
        if r.returncode != 0:
            return f"chaos suite: cannot create a veth pair: {r.stderr.strip()}"
    finally:
        run("ip", "netns", "del", probe, check=False)
    return None


def impair_unavailable_reason() -> str | None:
    if iptables_command() is None:
        return (
            "loss/delay needs iptables (NFQUEUE) and it is not installed; "
            ".ci/run installs it with apt-get when root ('apt-get install -y iptables')"
        )
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_namespace_pids(ns: str) -> None:
    r = run("ip", "netns", "pids", ns, check=False)
    for word in r.stdout.split():
        if word.isdigit():
            try:
                os.kill(int(word), signal.SIGKILL)
            except ProcessLookupError:
                pass


def sweep_stale() -> list[str]:
    """Delete namespaces of earlier labs whose owning process is gone; returns their names."""
    r = run("ip", "netns", "list", check=False)
    removed = []
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"^{PREFIX}(\d+)(x\d+-|probe$)", name)
        if not m or _pid_alive(int(m.group(1))):
            continue
        _kill_namespace_pids(name)
        run("ip", "netns", "del", name, check=False)
        removed.append(name)
    return removed


class Proc:
    """A process started in a namespace; its stdout/stderr go to ``log_path``."""

    def __init__(self, name: str, ns: str, argv: Sequence[str], log_path: Path, pipe: bool):
        self.name = name
        self.ns = ns
        self.argv = list(argv)
        self.log_path = log_path
        self.paused = False
        with open(log_path, "ab") as log:
            # `ip netns exec` enters the namespace and execs the command: same pid.
            self.popen = subprocess.Popen(
                ["ip", "netns", "exec", ns, *argv],
                stdin=subprocess.PIPE if pipe else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipe else log,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                preexec_fn=_die_with_parent,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        if self.alive():
            if self.paused:
                self.resume()
            os.kill(self.pid, signal.SIGKILL)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.popen.stdin, self.popen.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.alive():
            self.resume()
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.popen.poll()

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Lab:
    """N node namespaces on one bridge, in a switch namespace of their own."""

    def __init__(self, n: int, workdir: Path, ipv6: bool = False) -> None:
        self.n = n
        self.ipv6 = ipv6  # nodes on SUBNET6::i (IPv6 only: no IPv4 address on eth0)
        self.workdir = workdir
        self.tag = f"{PREFIX}{os.getpid()}x{next(_counter)}"
        self.switch = f"{self.tag}-sw"
        self.namespaces = [f"{self.tag}-n{i + 1}" for i in range(n)]
        self.addresses = [f"{SUBNET6}::{i + 1}" if ipv6 else f"{SUBNET}.{i + 1}" for i in range(n)]
        self.procs: list[Proc] = []
        self.impairers: list[Proc] = []
        self.created: list[str] = []
        self.closed = False
        atexit.register(self.close)

    # -- topology ------------------------------------------------------------------
    def up(self) -> Lab:
        try:
            for ns in (self.switch, *self.namespaces):
                run("ip", "netns", "add", ns)
                self.created.append(ns)
                run("ip", "-n", ns, "link", "set", "lo", "up")
            sw = ("ip", "-n", self.switch)
            run(*sw, "link", "add", "br0", "type", "bridge")
            run(*sw, "link", "set", "br0", "up")
            for i, ns in enumerate(self.namespaces):
                port = f"p{i + 1}"
                run(
                    *sw,
                    "link",
                    "add",
                    "name",
                    port,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    ns,
                )
                run(*sw, "link", "set", port, "master", "br0")
                run(*sw, "link", "set", port, "up")
                if self.ipv6:  # nodad: usable at once (no duplicate address detection)
                    run("ip", "-n", ns, "addr", "add", f"{self.addresses[i]}/64", "dev", "eth0",
                        "nodad")  # fmt: skip
                else:
                    run("ip", "-n", ns, "addr", "add", f"{self.addresses[i]}/24", "dev", "eth0")
                run("ip", "-n", ns, "link", "set", "eth0", "up")
        except BaseException:
            self.close()
            raise
        return self

    def link(self, i: int, up: bool) -> None:
        """Switch port of node i up or down (down: node i hears nobody, nobody hears it)."""
        run("ip", "-n", self.switch, "link", "set", f"p{i + 1}", "up" if up else "down")

    # -- processes -----------------------------------------------------------------
    def spawn(self, i: int, name: str, argv: Sequence[str], pipe: bool = False) -> Proc:
        proc = Proc(name, self.namespaces[i], argv, self.workdir / f"{name}.log", pipe)
        self.procs.append(proc)
        return proc

    # -- loss and delay --------------------------------------------------------------
    def impair(
        self, nodes: Sequence[int], loss: float, delay: tuple[float, float], seed: int
    ) -> None:
        """Loss and delay on the egress of each given node's eth0 (so once per packet)."""
        ipt = iptables_command()
        if ipt is None:
            raise LabError(impair_unavailable_reason() or "iptables missing")
        for i in nodes:
            ns = self.namespaces[i]
            proc = self.spawn(
                i,
                f"impair-n{i + 1}",
                [
                    sys.executable,
                    str(HERE / "impair.py"),
                    "--queue",
                    "0",
                    "--loss",
                    str(loss),
                    "--delay-min",
                    str(delay[0]),
                    "--delay-max",
                    str(delay[1]),
                    "--seed",
                    str(seed * 31 + i),
                ],
                pipe=True,
            )
            self.impairers.append(proc)
            assert proc.popen.stdout is not None
            line = read_line(proc, 5.0)
            if line != "impair bound":
                raise LabError(f"impairer in {ns} did not bind: {line!r}\n{proc.log_tail()}")
            run(
                "ip",
                "netns",
                "exec",
                ns,
                ipt,
                "-A",
                "OUTPUT",
                "-o",
                "eth0",
                "-j",
                "NFQUEUE",
                "--queue-num",
                "0",
                "--queue-bypass",
            )

    def clear_impairment(self) -> None:
        ipt = iptables_command()
        if ipt is not None:
            for ns in self.namespaces:
                run("ip", "netns", "exec", ns, ipt, "-F", "OUTPUT", check=False)
        for proc in self.impairers:
            proc.stop(3.0)
        self.impairers.clear()

    # -- cleanup ---------------------------------------------------------------------
    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for proc in self.procs:
            try:
                proc.kill()
            except OSError:
                pass
        for ns in reversed(self.created):
            _kill_namespace_pids(ns)
            run("ip", "netns", "del", ns, check=False)
        self.created.clear()
        try:
            atexit.unregister(self.close)
        except Exception:
            pass


def read_line(proc: Proc, timeout: float) -> str | None:
    """One line of a piped process's stdout within ``timeout`` (None: none came)."""
    import select

    stream = proc.popen.stdout
    assert stream is not None
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        ch = os.read(stream.fileno(), 1)
        if not ch:
            break
        if ch == b"\n":
            return buf.decode(errors="replace")
        buf += ch
    return buf.decode(errors="replace") if buf else None
