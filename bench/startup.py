"""``python -m bench.startup``: what a client, a CLI command and a node cost before they do
anything, each row a fresh process, wall and CPU time, warm and cold, optionally A/B against
another tree (``--base DIR``).  bench/README.md, "Start-up", says what each row runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import msgpack
import zmq

from bench.common import (
    NODE_START_SECONDS,
    connect,
    cpu_seconds,
    free_port_block,
    ping,
    request,
    terminate,
    wait_until,
)
from meshreg.wire.replies import encode_request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_SECONDS = 30.0  # bound on one measured command


CWD = tempfile.gettempdir()  # not the repository: ``python -c`` puts the cwd on sys.path


def _env(tree: str, cold_dir: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = tree
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPYCACHEPREFIX", None)
    if cold_dir is not None:
        env["PYTHONPYCACHEPREFIX"] = cold_dir
    return env


def _meshreg(*args: str) -> list[str]:
    """The console script run by this interpreter: ``PYTHONPATH`` picks the tree."""
    script = shutil.which("meshreg") or os.path.join(os.path.dirname(sys.executable), "meshreg")
    return [sys.executable, script, *args]


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``cmd``, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=RUN_SECONDS, cwd=CWD)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def node_start_once(env: dict[str, str], data_dir: str) -> tuple[float, float]:
    """(seconds until a spawned node answers a ping, its CPU seconds by then)."""
    port = free_port_block()
    ctx = zmq.Context()
    sock = connect(ctx, zmq.DEALER, port, RECONNECT_IVL=2)  # ms: retry often while it starts
    cmd = _meshreg("node", "--port", str(port), "--data-dir", data_dir, "--log-level", "error")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=CWD, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        # queued on the socket until the connection is made, then delivered
        sock.send_multipart([b"", msgpack.packb({"v": 1, "id": 1, "op": "ping"})])
        if not sock.poll(NODE_START_SECONDS * 1000.0):
            raise RuntimeError(f"node on {port} did not answer within {NODE_START_SECONDS}s")
        wall = time.perf_counter() - t0
        sock.recv_multipart()
        return wall, cpu_seconds(proc.pid)
    finally:
        sock.close(linger=0)
        ctx.term()
        terminate(proc, 10.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__)
    ap.add_argument("--runs", type=int, default=7, help="runs per row and variant (7)")
    ap.add_argument("--base", help="a tree to compare with (PYTHONPATH=BASE)")
    ap.add_argument("--tree", default=REPO, help="the tree measured (this repository)")
    ap.add_argument("--no-cold", action="store_true", help="warm rows only")
    ap.add_argument("--only", help="comma-separated row names")
    ap.add_argument("--json", help="write every sample to this file")
    opts = ap.parse_args(argv)
    variants = {"this": opts.tree} | ({"base": opts.base} if opts.base else {})
    for name, tree in variants.items():  # say which code each variant runs
        where = subprocess.run(
            [sys.executable, "-c", "import meshreg.cli; print(meshreg.cli.__file__)"],
            env=_env(tree, None), capture_output=True, text=True, check=True, cwd=CWD,
        ).stdout.strip()  # fmt: skip
        print(f"{name}: {where}")

    tmp = tempfile.mkdtemp(prefix="meshreg-startup-")
    port = free_port_block()
    node = subprocess.Popen(
        _meshreg("node", "--port", str(port), "--data-dir", os.path.join(tmp, "node")),
        env=_env(opts.tree, None), cwd=CWD, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        up = wait_until(lambda: node.poll() is not None or ping(port, 0.2), NODE_START_SECONDS)
        if up is None or node.poll() is not None:
            raise RuntimeError("the node did not start")
        reply = request(port, encode_request(
            "register", 1, namespace="public", group="DEFAULT_GROUP", service="orders",
            ip="10.0.0.5", port=8080, cluster="DEFAULT", weight=1.0, enabled=True, metadata={},
        ))  # fmt: skip
        if not (reply or {}).get("ok"):
            raise RuntimeError(f"register on {port}: {reply!r}")
        server = f"127.0.0.1:{port}"
        pub = subprocess.run(
            _meshreg("config", "publish", "app.toml", "--content", "a = 1", "-s", server),
            env=_env(opts.tree, None), capture_output=True, timeout=RUN_SECONDS,
            cwd=CWD,
        )  # fmt: skip
        if pub.returncode != 0:
            raise RuntimeError(f"config publish failed: {pub.stderr.decode()}")
        py = [sys.executable]
        rows: dict[str, list[str] | None] = {
            "python -c pass": [*py, "-c", "pass"],
            "import client": [*py, "-c", "from meshreg import Client"],
            "meshreg --help": _meshreg("--help"),
            "meshreg services": _meshreg("services", "-s", server),
            "meshreg instances": _meshreg("instances", "orders", "-s", server),
            "meshreg config get": _meshreg("config", "get", "app.toml", "-s", server),
            "node answers": None,
        }
        if opts.only:
            keep = opts.only.split(",")
            rows = {k: v for k, v in rows.items() if k in keep}
        modes = ["warm"] + ([] if opts.no_cold else ["cold"])
        samples: dict[str, list[tuple[float, float]]] = {}

        def once(cmd: list[str] | None, env: dict[str, str]) -> tuple[float, float]:
            if cmd is None:  # the node's own row
                return node_start_once(env, tempfile.mkdtemp(dir=tmp))
            return run_once(cmd, env)

        for row, cmd in rows.items():
            for mode in modes:
                names = list(variants)
                if mode == "warm":  # fill the bytecode caches first
                    for name in names:
                        once(cmd, _env(variants[name], None))
                for i in range(opts.runs):
                    for name in names if i % 2 == 0 else names[::-1]:
                        cold = tempfile.mkdtemp(dir=tmp) if mode == "cold" else None
                        sample = once(cmd, _env(variants[name], cold))
                        samples.setdefault(f"{row}|{mode}|{name}", []).append(sample)
                        if cold is not None:
                            shutil.rmtree(cold, ignore_errors=True)
                line = f"{row:<20} {mode:<5}"
                for name in names:
                    got = samples[f"{row}|{mode}|{name}"]
                    wall = statistics.median(w for w, _ in got) * 1000
                    cpu = statistics.median(c for _, c in got) * 1000
                    line += f"  {name}: wall {wall:6.0f} ms cpu {cpu:6.0f} ms"
                print(line, flush=True)
        if opts.json:
            with open(opts.json, "w", encoding="utf-8") as fh:
                json.dump({"variants": variants, "runs": opts.runs, "samples": samples}, fh)
    finally:
        terminate(node, 10.0)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
