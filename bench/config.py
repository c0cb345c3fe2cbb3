"""``config``: the configuration center (issue 12) beside etcd, both with the same loaders,
window, keys, content and row sequence (:func:`load_rows`); bench/README.md,
"Configuration center", says what each row measures and with which durability.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack
import zmq

from bench.baselines import (
    CONNECT_SECONDS,
    ETCD,
    RPC_SECONDS,
    _etcd_channel,
    _field,
    _fields,
    _ints,
    _run_loaders,
    _windowed,
    etcd_missing,
    put_request,
    range_request,
    range_response,
    with_etcd,
)
from bench.common import (
    GROUP,
    HOST,
    LOAD_COLUMNS,
    LOAD_TAIL,
    NS,
    QUIET,
    NodeProc,
    Procs,
    Say,
    Scenario,
    connect,
    dist_ms,
    fmt_table,
    load_notes,
    machine_info,
    met,
    owned_services,
    ratio,
    start_cluster,
    stats,
    table,
)
from bench.load import MAX_OPS_PER_SECOND, drive, make_template, run_load, run_rows
from meshreg.configcenter.model import ConfigKey
from meshreg.configcenter.replication import responsible_config_node
from meshreg.wire.replies import encode_request

# issue 12: Nacos 2.0 on one 8-core node with an external database, and the goals on 2 cores
ANCHORS = {"publish": "~2,500/s", "get": "14,000/s", "push": "1,500 changes/s"}
GOAL_PUBLISH, GOAL_PUBLISH_P99_MS, GOAL_GET, GOAL_LISTEN_P99_MS = 2500.0, 10.0, 30000.0, 5.0
TOPIC = b"\x00config\x00"  # config notifications: TOPIC + ns NUL group NUL data id NUL
SUBSCRIBED_SECONDS = 10.0  # bound on the listener's subscription taking effect
PRELOAD_SECONDS = 60.0  # bound on publishing every data id once
MAX_ROW_OPS = 10_000_000  # bound on the requests of one listener run
W_PUB, W_PACED, W_GET1, W_GETK = "publish max", "publish paced", "get 1", "get K"
W_HALF = "publish at 50%"
pc = time.perf_counter


# -- data ids, contents, requests ---------------------------------------------------------
def data_id(i: int) -> str:
    return f"bench-cfg-{i}"


def content_of(name: str, variant: Any, size: int) -> str:
    """``size`` characters (at least the head) naming the data id and the variant: two
    variants of one data id differ, so every publish changes the content."""
    head = f"{name} #{variant} "
    return head + "x" * max(0, size - len(head))


def etcd_key(name: str) -> bytes:
    return f"/config/{NS}/{GROUP}/{name}".encode()


def owned_ids(addresses: list[str], count: int) -> dict[str, tuple[str, ...]]:
    """About ``count`` data ids, ceil(count / nodes) owned by each address."""
    owner = lambda name: responsible_config_node(ConfigKey(NS, GROUP, name), addresses)  # noqa: E731
    return owned_services(addresses, -(-count // len(addresses)), data_id(0)[:-1], owner)


def config_templates(
    variants: int, spec: tuple[Any, ...], first: int = 0
) -> list[tuple[bytes, bytes]]:
    """bench/load.py templates (``templates_for(config_templates, variants, spec)``):
    spec ``("publish", data ids, content bytes)``: ``variants`` contents per data id, the
    data ids cycled in turn; ``("get", data ids, _)``: one config_get per data id."""
    op, ids, size = spec
    key = {"namespace": NS, "group": GROUP}
    if op == "publish":
        pairs = [(v, d) for v in range(variants) for d in ids]
        return [make_template("config_publish", k < 2, **key, data_id=d, type="text",
                              content=content_of(d, v, size))
                for k, (v, d) in enumerate(pairs)]  # fmt: skip
    if op == "get":
        return [make_template("config_get", k < 2, **key, data_id=d) for k, d in enumerate(ids)]
    raise ValueError(f"unknown config workload {op!r}")


def publish_all(port: int, ids: tuple[str, ...], size: int) -> None:
    """Publish every data id once through ``port`` (so that every get finds it)."""
    templates = config_templates(1, ("publish", ids, size))
    r = drive(f"tcp://{HOST}:{port}", templates, window=32, seconds=PRELOAD_SECONDS,
              drain_seconds=PRELOAD_SECONDS, once=True)  # fmt: skip
    if r["ok_total"] != len(templates):
        raise RuntimeError(f"config_publish of {len(templates)} data ids on {HOST}:{port}: "
                           f"{r['ok_total']} ok, errors {r['error_names']}, {r['lost']} "
                           "unanswered")  # fmt: skip


def paced_changes(
    changes: int, warmup: int, rate: float, one: Callable[[int], tuple[Any, Any, Any]]
) -> dict[str, Any]:
    """``warmup + changes`` calls of ``one(i)``, one at a time at ``rate``/s, each returning
    (ack s, notified s, error) from its send: the listener row (the warm-up not counted)."""
    acks: list[float] = []
    notes: list[float] = []
    errors: dict[str, int] = {}
    timeouts = 0
    t_start = pc()
    for i in range(min(warmup + changes, MAX_ROW_OPS)):  # bounded
        due = t_start + i / rate - pc()
        if due > 0:
            time.sleep(min(due, 1.0))
        ack, note, error = one(i)
        if error:
            errors[error] = errors.get(error, 0) + 1
        if i < warmup:
            continue
        if ack is not None and not error:
            acks.append(ack)
        if note is not None:
            notes.append(note)
        elif not error:
            timeouts += 1
    return {"changes": changes, "warmup_changes": warmup, "rate": rate,
            "notify_ms": dist_ms(notes), "ack_ms": dist_ms(acks), "timeouts": timeouts,
            "errors": errors}  # fmt: skip


# -- meshreg: change to listener ------------------------------------------------------------
def listener_latency(
    pub_port: int, sub_port: int, ids: tuple[str, ...], size: int, changes: int, warmup: int,
    rate: float, timeout: float,
) -> dict[str, Any]:  # fmt: skip
    """``warmup + changes`` publishes, one at a time at ``rate``/s, sent on a DEALER to the
    node at ``pub_port``; a SUB on ``sub_port`` (another node's P+1) subscribed to the
    namespace's config topic.  Per change: send -> reply (ack) and send -> notification."""
    zctx = zmq.Context()
    dealer = connect(zctx, zmq.DEALER, pub_port)
    sub = connect(zctx, zmq.SUB, sub_port, SUBSCRIBE=TOPIC + NS.encode() + b"\x00")
    poller = zmq.Poller()
    poller.register(dealer, zmq.POLLIN)
    poller.register(sub, zmq.POLLIN)
    seq = [0]
    other = [0]

    def one(name: str, content: str, wait: float) -> tuple[float | None, float | None, Any]:
        """Publish, then wait up to ``wait`` for the reply and the notification: (ack s,
        notified s, error) from the send."""
        seq[0] += 1
        rid, md5 = seq[0], hashlib.md5(content.encode()).hexdigest()
        body = encode_request("config_publish", rid, namespace=NS, group=GROUP, data_id=name,
                              content=content, type="text")  # fmt: skip
        t0 = pc()
        dealer.send_multipart([b"", body])
        ack = note = error = None
        deadline = t0 + wait
        for _ in range(100_000):  # bounded, and by the deadline
            if ack is not None and (note is not None or error is not None):
                break
            left = deadline - pc()
            if left <= 0:
                break
            for sock, _ in poller.poll(max(1.0, left * 1000.0)):
                now = pc()
                frames = sock.recv_multipart()
                try:
                    msg = msgpack.unpackb(frames[-1])
                except Exception:
                    continue
                if not isinstance(msg, dict):
                    continue
                if sock is dealer and msg.get("id") == rid:
                    ack = now - t0
                    if msg.get("ok") is not True:
                        error = (msg.get("error") or {}).get("name", "BAD_REPLY")
                elif sock is sub and msg.get("data_id") == name and msg.get("md5") == md5:
                    note = now - t0
                else:
                    other[0] += 1
        return ack, note, error

    try:
        # the SUB's subscription takes effect asynchronously: publish until one is heard
        t_sub = pc() + SUBSCRIBED_SECONDS
        heard = False
        for k in range(1000):  # bounded, and by t_sub
            _, note, error = one(ids[0], content_of(ids[0], f"probe{k}", size), 0.3)
            if error:
                raise RuntimeError(f"config_publish on {HOST}:{pub_port} failed: {error}")
            if note is not None or pc() >= t_sub:
                heard = note is not None
                break
        if not heard:
            raise RuntimeError(
                f"no config notification on {HOST}:{sub_port} within "
                f"{SUBSCRIBED_SECONDS:g}s of publishing on {HOST}:{pub_port}"
            )

        def change(i: int) -> tuple[float | None, float | None, Any]:
            name = ids[i % len(ids)]
            return one(name, content_of(name, f"l{i}", size), timeout)

        return {**paced_changes(changes, warmup, rate, change), "other_messages": other[0]}
    finally:
        dealer.close(linger=0)
        sub.close(linger=0)
        zctx.term()


# -- the rows both systems get --------------------------------------------------------------
VERBS = {"meshreg": ("publish", "get"), "etcd": ("put", "range")}


def load_rows(
    o: argparse.Namespace, say: Say, system: str, nodes: int,
    measure: Callable[[str, int, float | None], dict[str, Any]],
) -> list[dict[str, Any]]:  # fmt: skip
    """Publish at its max from one loader per node (``--quick``: one); full runs only: paced
    at half of that, at ``--rate`` and at each of ``--rates``, get from 1 loader; get from
    ``--clients`` loaders.
    ``measure(verb, loaders, rate)``: one run of the system's loaders."""
    pub, get = VERBS[system]
    n = 1 if o.quick else nodes
    rows: list[dict[str, Any]] = []

    def row(measure_name: str, workload: str, verb: str, loaders: int,
            rate: float | None = None) -> None:  # fmt: skip
        say(f"  {system} {workload} ...")
        r = run_rows(o.repeat, lambda: measure(verb, loaders, rate), rate is not None)
        rows.append({"system": system, "measure": measure_name, "workload": workload, **r})

    row(W_PUB, f"{pub}, {n} loaders x {o.window}", pub, n)
    if not o.quick:
        half = max(1.0, rows[-1]["ops_per_second"] / 2)
        row(W_HALF, f"{pub} paced at {half:,.0f}/s (50% of max)", pub, n, half)
        row(W_PACED, f"{pub} paced at {o.rate:,.0f}/s", pub, n, o.rate)
        for rate in o.rates or ():  # the knee (--rates): the table below lists these rows
            row(f"{W_PACED} {rate:g}", f"{pub} paced at {rate:,.0f}/s", pub, n, rate)
        row(W_GET1, f"{get}, 1 loader", get, 1)
    row(W_GETK, f"{get}, {o.clients} loaders", get, o.clients)
    return rows


# -- meshreg ----------------------------------------------------------------------------
def _meshreg(procs: Procs, ctx: Any, o: argparse.Namespace, say: Say, log_dir: str) -> Any:
    def setup(i: int, node: NodeProc) -> None:
        node.args += ["--data-dir", os.path.join(log_dir, f"data-{i}")]
        if i == 0 and o.profile_node:
            node.prefix = ["-m", "cProfile", "-o", o.profile_node]

    nodes = start_cluster(procs, o.nodes, log_dir, QUIET, setup=setup)
    pids = [nd.pid for nd in nodes]
    owned = owned_ids([nd.address for nd in nodes], o.data_ids)
    every = tuple(d for nd in nodes for d in owned[nd.address])
    for nd in nodes:
        publish_all(nd.port, owned[nd.address], o.content_bytes)
    say(f"  {len(nodes)} nodes up, {len(every)} data ids published")

    def measure(op: str, loaders: int, rate: float | None) -> dict[str, Any]:
        """Publishes (two contents per data id) to the owners, or gets of every data id."""
        targets = [(nd.port, (config_templates, 2, ("publish", owned[nd.address], o.content_bytes))
                    if op == "publish" else (config_templates, 1, ("get", every, 0)))
                   for nd in (nodes[k % len(nodes)] for k in range(loaders))]  # fmt: skip
        return run_load(procs, ctx, targets, pids, o.window, o.seconds, o.warmup, rate=rate)

    rows = load_rows(o, say, "meshreg", len(nodes), measure)
    say(f"  meshreg listener: {o.changes} changes at {o.listen_rate:g}/s ...")
    listen = listener_latency(nodes[0].port, nodes[-1].port + 1, owned[nodes[0].address],
                              o.content_bytes, o.changes, o.warmup_changes, o.listen_rate,
                              o.change_timeout)  # fmt: skip
    node_stats = {}
    for nd in nodes:
        try:
            node_stats[nd.address] = stats(nd.port).get("config")
        except Exception as exc:  # a figure less, not a failed run
            node_stats[nd.address] = f"{type(exc).__name__}: {exc}"
    dead = [nd.address for nd in nodes if not nd.alive()]
    if dead:
        raise RuntimeError(f"node(s) {', '.join(dead)} exited during the run")
    return {"rows": rows, "listener": listen, "node_stats": node_stats,
            "data_ids": len(every)}  # fmt: skip


# -- etcd -------------------------------------------------------------------------------
def etcd_config_loader(
    op: str, port: int, names: tuple[str, ...], size: int, window: int, seconds: float,
    warmup: float, rate: float | None, cleanups: list[Any],
) -> Any:  # fmt: skip
    """One etcd loader's set-up (bench/common.py ``worker_main``): ``window`` puts (two contents
    per key, in turn) or ranges of one key in flight on one gRPC channel, paced at ``rate``
    per s if given; the measuring call."""
    channel = _etcd_channel(port, CONNECT_SECONDS)
    cleanups.append(channel.close)
    keys = [etcd_key(n) for n in names]
    if op == "put":
        method = channel.unary_unary(ETCD + "KV/Put")
        reqs = [put_request(k, content_of(n, v, size).encode())
                for v in range(2) for k, n in zip(keys, names, strict=True)]  # fmt: skip
    elif op == "range":
        method = channel.unary_unary(ETCD + "KV/Range")
        reqs = [range_request(k) for k in keys]
    else:
        raise ValueError(f"unknown etcd workload {op!r}")
    expect = keys * (len(reqs) // len(keys))
    max_ops = max(1, int((seconds + warmup) * MAX_OPS_PER_SECOND))
    start = [0.0]

    def issue(seq: int, t0: float, finish: Any) -> None:
        if rate:  # paced: wait for this request's turn (the window only bounds it)
            start[0] = start[0] or pc()
            wait = start[0] + seq / rate - pc()
            if wait > 0:
                time.sleep(min(wait, 1.0))
            t0 = pc() if t0 else 0.0
        k = seq % len(reqs)

        def done(f: Any) -> None:
            exc = f.exception()
            if exc is not None:
                return finish(t0, False, f.code().name)
            good = op == "put" or expect[k] in f.result()  # a range finds its key
            finish(t0, good, None if good else "NOT_FOUND")

        method.future(reqs[k], timeout=RPC_SECONDS).add_done_callback(done)

    return lambda: _windowed(issue, window, seconds, warmup, max_ops)


def etcd_put_all(port: int, names: tuple[str, ...], size: int) -> None:
    """Put every key once (so that every range finds it) and check one by a range."""
    channel = _etcd_channel(port, CONNECT_SECONDS)
    try:
        put = channel.unary_unary(ETCD + "KV/Put")
        for k in range(0, len(names), 64):  # bounded: 64 in flight at a time
            futures = [put.future(put_request(etcd_key(n), content_of(n, 0, size).encode()),
                                  timeout=RPC_SECONDS) for n in names[k : k + 64]]  # fmt: skip
            for f in futures:
                f.result(timeout=RPC_SECONDS)
        got = range_response(channel.unary_unary(ETCD + "KV/Range")(
            range_request(etcd_key(names[0])), timeout=RPC_SECONDS))  # fmt: skip
        if len(got) != 1 or got[0].get(5) != content_of(names[0], 0, size).encode():
            raise RuntimeError(f"etcd Range of {etcd_key(names[0])!r} after Put: {got}")
    finally:
        channel.close()


def watch_latency(
    put_port: int, watch_port: int, names: tuple[str, ...], size: int, changes: int,
    warmup: int, rate: float, timeout: float,
) -> dict[str, Any]:  # fmt: skip
    """etcd's listener row: a Watch stream on the member at ``watch_port`` over the keys'
    prefix; ``warmup + changes`` puts, one at a time at ``rate``/s, on the member at
    ``put_port``; per change: send -> put's answer (ack) and send -> watch event."""
    import grpc

    prefix = f"/config/{NS}/".encode()
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    put_channel = _etcd_channel(put_port, CONNECT_SECONDS)
    watch_channel = _etcd_channel(watch_port, CONNECT_SECONDS)
    put = put_channel.unary_unary(ETCD + "KV/Put")
    arrived: dict[bytes, float] = {}
    cond, created, stop = threading.Condition(), threading.Event(), threading.Event()
    total = SUBSCRIBED_SECONDS + (warmup + changes) * (1.0 / rate + timeout + RPC_SECONDS)

    def requests() -> Any:
        yield _field(1, _field(1, prefix) + _field(2, end))  # WatchRequest{create_request}
        stop.wait(total)  # keeps the stream open until the run is over (bounded)

    call = watch_channel.stream_stream(ETCD + "Watch/Watch")(requests(), timeout=total)

    def consume() -> None:
        try:
            for answer in call:  # bounded: the stream's deadline, cancelled at the end
                now = pc()
                fields = _fields(answer)
                if any(n == 3 and v for n, v in fields):  # WatchResponse.created
                    created.set()
                with cond:
                    for n, event in fields:
                        if n == 11 and isinstance(event, bytes):  # events: Event{kv = 2}
                            value = _ints(_ints(event).get(2, b"")).get(5, b"")
                            arrived[bytes(value)] = now
                    cond.notify_all()
        except grpc.RpcError:
            pass  # cancelled at the end of the run

    def heard(value: bytes) -> Any:
        return lambda: value in arrived

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    try:
        if not created.wait(SUBSCRIBED_SECONDS):
            raise RuntimeError(f"etcd watch on {HOST}:{watch_port} not created within "
                               f"{SUBSCRIBED_SECONDS:g}s")  # fmt: skip

        def change(i: int) -> tuple[float | None, float | None, Any]:
            name = names[i % len(names)]
            value = content_of(name, f"l{i}", size).encode()
            t0 = pc()
            put(put_request(etcd_key(name), value), timeout=RPC_SECONDS)
            ack = pc() - t0
            with cond:
                cond.wait_for(heard(value), timeout=timeout)
                t_note = arrived.pop(value, None)
            return ack, None if t_note is None else t_note - t0, None

        return paced_changes(changes, warmup, rate, change)
    finally:
        stop.set()
        call.cancel()
        thread.join(5)
        put_channel.close()
        watch_channel.close()


def _etcd(procs: Procs, ctx: Any, o: argparse.Namespace, say: Say) -> dict[str, Any]:
    window, size = o.window, o.content_bytes

    def body(ports: list[int], pids: list[int]) -> dict[str, Any]:
        per_node = -(-o.data_ids // len(ports))
        names = tuple(data_id(k) for k in range(per_node * len(ports)))
        etcd_put_all(ports[0], names, o.content_bytes)
        say(f"  etcd: {len(ports)} members up, {len(names)} keys put")

        def measure(op: str, loaders: int, rate: float | None) -> dict[str, Any]:
            """Puts (two contents per key), each loader its member's share of the keys, or
            ranges of every key; ``rate`` in all."""
            jobs = [(op, ports[k % len(ports)], names[k :: len(ports)] if op == "put" else names,
                     size, window, o.seconds, o.warmup, rate and rate / loaders)
                    for k in range(loaders)]  # fmt: skip
            return _run_loaders(procs, ctx, etcd_config_loader, jobs, pids, window, o.seconds,
                                o.warmup, 0.0, f"etcd {op}")  # fmt: skip

        rows = load_rows(o, say, "etcd", len(ports), measure)
        say(f"  etcd watch: {o.changes} changes at {o.listen_rate:g}/s ...")
        listen = watch_latency(ports[0], ports[-1], names, size, o.changes, o.warmup_changes,
                               o.listen_rate, o.change_timeout)  # fmt: skip
        return {"rows": rows, "listener": listen, "members": len(ports)}

    return with_etcd(procs, body, o.nodes)  # type: ignore[no-any-return]


# -- the scenario -----------------------------------------------------------------------
def run(procs: Procs, ctx: Any, o: argparse.Namespace, say: Say, log_dir: str) -> Any:
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    out: dict[str, Any] = {"skipped": [], "anchors": ANCHORS, "load_average_at_start": load}
    only = {x.lower() for x in o.only or ()} & {"meshreg", "etcd"}
    if not only or "meshreg" in only:
        say(f"meshreg: {o.nodes} nodes on {HOST}, --data-dir each ...")
        out["meshreg"] = _meshreg(procs, ctx, o, say, log_dir)
        procs.stop_all()
    why = ("not run (--no-peers)" if not o.peers else
           "not run (--only meshreg)" if only == {"meshreg"} else etcd_missing())  # fmt: skip
    if why:
        out["skipped"].append(f"etcd: {why}")
        return out
    say(f"etcd: {o.nodes} members on {HOST} ...")
    try:
        out["etcd"] = _etcd(procs, ctx, o, say)
    except Exception as exc:  # etcd failing must not cost meshreg's own figures
        out["skipped"].append(f"etcd: failed: {type(exc).__name__}: {exc}")
    finally:
        procs.stop_all()
    return out


def problem(result: dict[str, Any]) -> bool:
    """meshreg's half lost or failed a request, or missed a change (its node logs are kept)."""
    r = result.get("meshreg") or {"listener": {"timeouts": 0}, "rows": []}
    return bool(r["listener"]["timeouts"] or any(x["errors"] or x["lost"] for x in r["rows"]))


def _rows(result: dict[str, Any], system: str) -> dict[str, dict[str, Any]]:
    """The system's rows by measure, and its listener's distributions (``notify_ms``,
    ``ack_ms``) as rows with the same latency cells."""
    got = result.get(system) or {}
    rows = {r["measure"]: r for r in got.get("rows", [])}
    for k, d in ((k, got["listener"][k]) for k in ("notify_ms", "ack_ms") if "listener" in got):
        rows[k] = {"p50_ms": d["p50"], "p99_ms": d["p99"] if d["n"] else None}
    return rows


def summary(result: dict[str, Any]) -> list[list[str]]:
    """The side-by-side rows: measure, meshreg, etcd, meshreg/etcd, goal, Nacos 2.0."""
    m, e = _rows(result, "meshreg"), _rows(result, "etcd")
    s = result["settings"]
    out: list[list[str]] = []

    def add(label: str, k: str, cell: Callable[[dict[str, Any]], str], key: str | None,
            goal: str = "", anchor: str = "") -> None:  # fmt: skip
        """A line for measure ``k`` when either system has it; the ratio of ``key`` (a
        latency's: of its p99)."""
        if k in m or k in e:
            a, b = (r[k][key] if k in r and key else None for r in (m, e))
            times = "" if key is None else ratio(a, b) + (" (p99)" if "p99" in key else "")
            out.append([label, *(cell(r[k]) if k in r else "-" for r in (m, e)), times, goal,
                        anchor])  # fmt: skip

    def per(r: dict[str, Any]) -> str:
        return f"{r['ops_per_second']:,.0f}/s"

    def lat(r: dict[str, Any]) -> str:
        return "-" if r["p99_ms"] is None else f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}"

    n = (m.get(W_PUB) or e.get(W_PUB) or {}).get("clients", s["nodes"])
    add(f"publish (put)/s, {n} loaders x {s['window']} in flight", W_PUB, per, "ops_per_second",
        f">= {GOAL_PUBLISH:,.0f}/s", ANCHORS["publish"])  # fmt: skip
    add("  its p50 / p99 ms", W_PUB, lat, "p99_ms")
    add("publish p50 / p99 ms paced at 50% of its max", W_HALF, lat, "p99_ms")
    add("  achieved rate", W_HALF, per, None)
    add(f"publish p50 / p99 ms paced at {s['rate']:,.0f}/s", W_PACED, lat, "p99_ms",
        f"p99 < {GOAL_PUBLISH_P99_MS:g} ms")  # fmt: skip
    add("  achieved rate", W_PACED, per, None)
    add("get (range)/s, 1 loader", W_GET1, per, "ops_per_second")
    add(f"get (range)/s, {s['clients']} loaders", W_GETK, per, "ops_per_second",
        f">= {GOAL_GET:,.0f}/s", ANCHORS["get"])  # fmt: skip
    add(f"change -> listener p50 / p99 ms ({s['changes']} at {s['listen_rate']:g}/s; "
        "SUB / watch on another node)", "notify_ms", lat, "p99_ms",
        f"p99 < {GOAL_LISTEN_P99_MS:g} ms", f"push {ANCHORS['push']}")  # fmt: skip
    add("  publish (put) ack p50 / p99 ms, one at a time", "ack_ms", lat, "p99_ms")
    for k, label in ((W_PUB, "server CPU us per publish (put), all nodes"),
                     (W_GETK, "server CPU us per get (range), all nodes")):  # fmt: skip
        add(label, k, lambda r: f"{r['server_cpu_us_per_op']:,.0f}", "server_cpu_us_per_op")
    return out


def report(result: dict[str, Any], say: Say) -> None:
    mach = machine_info()
    load = result.get("load_average_at_start") or ()
    etcd_n = (result.get("etcd") or {}).get("members")
    say(f"machine: {mach['cpu']}, {mach['nproc']} cores, kernel {platform.release()}, "
        f"load average at start {' '.join(f'{x:.2f}' for x in load)}")  # fmt: skip
    say(
        f"meshreg: {result['settings']['nodes']} nodes; etcd: "
        + (f"{etcd_n} members (default durability: WAL fsynced)" if etcd_n else "not run")
    )
    say(fmt_table(["measure", "meshreg", "etcd", "meshreg/etcd", "goal (2 cores)",
                   "Nacos 2.0 (8 cores)"], summary(result), right={1, 2, 3}))  # fmt: skip
    rows = [r for s in ("meshreg", "etcd") for r in (result.get(s) or {}).get("rows", [])]
    if rows:
        say("")
        say(table(rows, [("system", "system", "{}"), ("workload", "workload", "{}"),
                         ("ops/s", "ops_per_second", "{:,.0f}"), *LOAD_COLUMNS,
                         *LOAD_TAIL]))  # fmt: skip
    load_notes(rows, say, lambda r: f"{r['system']} {r['workload']}")
    for s in ("meshreg", "etcd"):
        listen = (result.get(s) or {}).get("listener")
        if listen and (listen["timeouts"] or listen["errors"]):
            limit = result["settings"]["change_timeout"]
            say(f"  {s} listener: {listen['timeouts']} changes not heard within "
                f"{limit:g}s, errors {listen['errors']}")  # fmt: skip
    load_notes([], say, skipped=result["skipped"])


def config_targets(result: dict[str, Any]) -> list[list[str]]:
    """Issue 12's goals with this run's figures (runner's targets table)."""
    m = _rows(result, "meshreg")
    rate = result["settings"]["rate"]
    goals = [  # (target, measure, figure, its format, met)
        (f"config publish >= {GOAL_PUBLISH:,.0f}/s (majority, on disk)", W_PUB, "ops_per_second",
         "{:,.0f}/s", lambda x: x >= GOAL_PUBLISH),
        (f"config publish p99 < {GOAL_PUBLISH_P99_MS:g} ms at {rate:,.0f}/s", W_PACED, "p99_ms",
         "{:.2f} ms", lambda x: x < GOAL_PUBLISH_P99_MS),
        (f"config get >= {GOAL_GET:,.0f}/s", W_GETK, "ops_per_second", "{:,.0f}/s",
         lambda x: x >= GOAL_GET),
        (f"config change -> listener p99 < {GOAL_LISTEN_P99_MS:g} ms", "notify_ms", "p99_ms",
         "{:.2f} ms", lambda x: x < GOAL_LISTEN_P99_MS),
    ]  # fmt: skip
    return [[target, form.format(m[k][key]), met(ok(m[k][key]))]
            for target, k, key, form, ok in goals if m.get(k, {}).get(key) is not None]  # fmt: skip


SCENARIOS = (
    Scenario("config", run, report, "config center: publish/s p50/p99, get/s, change -> "
             "listener p50/p99 on 3 nodes, beside etcd's put, range and watch",
             {"seconds": (3.0, 0.3), "warmup": (0.5, 0.1), "clients": (3, 1),
              "window": (64, 16), "nodes": (3, 3), "data_ids": (240, 30),
              "content_bytes": (1024, 256), "rate": (2500.0, 500.0),
              "listen_rate": (200.0, 200.0), "changes": (500, 20), "warmup_changes": (20, 3),
              "change_timeout": (2.0, 2.0)}, problem=problem),
)  # fmt: skip
