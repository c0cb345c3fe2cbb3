"""review45 F3: `meshreg watch SERVICE` (and `meshreg config watch DATA_ID`) say nothing at
all, on stdout or stderr, when the only node they watch through dies: the last list stays
on the screen as if nothing changed.  The CLI gives long-lived client commands a
NullHandler with propagate off (cli.py `_client`: "one-shot commands"), so the client's
own warnings ("meshreg server ... closed the connection", "no meshreg server answers ...
serving ...") go nowhere; `meshreg register`, the other long-lived command, installs a
handler and does say it.

README, "The command line": "A node that cannot be reached gives a one-line error naming
the address"; "Consumers", "Outage": a consumer serving from its cache "said once per
service in the log".  An operator running `meshreg watch orders` during an incident
cannot tell "no change" from "blind".

Expected: within 15 s of the node's death (three times the client's 5 s watcher ping),
each watch prints a line naming the node's address (on stderr: stdout keeps the lists).
Fixed: both install a WARNING handler on stderr (cli ``_warnings_to_stderr``)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from helpers import NodeProcess, meshreg_cmd, run_cli


@pytest.mark.timeout(90)
def test_watch_says_when_its_node_is_gone(tmp_path: Path) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "d")).start()
    procs: dict[str, subprocess.Popen[str]] = {}
    outs: dict[str, Path] = {}
    try:
        server = node.address
        r = run_cli("config", "publish", "r45w.yaml", "--content", "a: 1", "-s", server)
        assert r.returncode == 0, r.stderr
        holder = subprocess.Popen(  # an instance, so the watch shows a non-empty list
            meshreg_cmd("register", "r45w", "10.0.0.5:8080", "-s", server),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        procs["register"] = holder
        for name, args in {
            "watch": ["watch", "r45w", "-s", server],
            "config watch": ["config", "watch", "r45w.yaml", "-s", server],
        }.items():
            outs[name] = tmp_path / f"{name.replace(' ', '_')}.out"
            fh = open(outs[name], "w")  # noqa: SIM115
            procs[name] = subprocess.Popen(
                meshreg_cmd(*args), stdout=fh, stderr=subprocess.STDOUT, text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while not (
            "10.0.0.5:8080" in outs["watch"].read_text()
            and "a: 1" in outs["config watch"].read_text()
        ):
            assert time.monotonic() < deadline, {k: v.read_text() for k, v in outs.items()}
            time.sleep(0.1)
        before = {k: len(v.read_text()) for k, v in outs.items()}
        node.kill()
        deadline = time.monotonic() + 15
        said: dict[str, str] = {}
        while time.monotonic() < deadline and len(said) < len(outs):
            for k, v in outs.items():
                new = v.read_text()[before[k] :]
                if server in new:
                    said[k] = new
            time.sleep(0.2)
        silent = {k: outs[k].read_text()[before[k] :] for k in outs if k not in said}
        assert not silent, (
            f"15 s after the only node ({server}) died, these said nothing naming it "
            f"(what they printed since: {silent})"
        )
    finally:
        for p in procs.values():
            p.kill()
            p.wait(5)
        node.cleanup()
