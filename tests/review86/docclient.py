"""A meshreg client written from docs/PROTOCOL.md (and docs/SECURITY.md) alone.

Only pyzmq, msgpack and the standard library: nothing from ``meshreg``.
"""
from __future__ import annotations

import configparser
import itertools
import os
import re
import secrets
import time

import msgpack
import zmq

# --------------------------------------------------------------------------------------
# XXH64 (seed 0), pure Python: section 6 says "xxh64(seed=0)", the canonical value.
_P1 = 11400714785074694791
_P2 = 14029467366897019727
_P3 = 1609587929392839161
_P4 = 9650029242287828579
_P5 = 2870177450012600261
_M = (1 << 64) - 1


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _M


def _round(acc, lane):
    acc = (acc + lane * _P2) & _M
    acc = _rotl(acc, 31)
    return (acc * _P1) & _M


def _merge(acc, val):
    acc ^= _round(0, val)
    return (acc * _P1 + _P4) & _M


def xxh64(data: bytes, seed: int = 0) -> int:
    n = len(data)
    i = 0
    if n >= 32:
        v1 = (seed + _P1 + _P2) & _M
        v2 = (seed + _P2) & _M
        v3 = seed & _M
        v4 = (seed - _P1) & _M
        while i + 32 <= n:
            v1 = _round(v1, int.from_bytes(data[i:i + 8], "little"))
            v2 = _round(v2, int.from_bytes(data[i + 8:i + 16], "little"))
            v3 = _round(v3, int.from_bytes(data[i + 16:i + 24], "little"))
            v4 = _round(v4, int.from_bytes(data[i + 24:i + 32], "little"))
            i += 32
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M
        for v in (v1, v2, v3, v4):
            h = _merge(h, v)
    else:
        h = (seed + _P5) & _M
    h = (h + n) & _M
    while i + 8 <= n:
        k = _round(0, int.from_bytes(data[i:i + 8], "little"))
        h ^= k
        h = (_rotl(h, 27) * _P1 + _P4) & _M
        i += 8
    if i + 4 <= n:
        h ^= (int.from_bytes(data[i:i + 4], "little") * _P1) & _M
        h = (_rotl(h, 23) * _P2 + _P3) & _M
        i += 4
    while i < n:
        h ^= (data[i] * _P5) & _M
        h = (_rotl(h, 11) * _P1) & _M
        i += 1
    h ^= h >> 33
    h = (h * _P2) & _M
    h ^= h >> 29
    h = (h * _P3) & _M
    h ^= h >> 32
    return h


# --------------------------------------------------------------------------------------
# Section 6: the rendezvous hash.
def service_key(service, namespace="public", group="DEFAULT_GROUP") -> bytes:
    return b"\x00".join(s.encode("utf-8") for s in (namespace, group, service))


def config_key(data_id, namespace="public", group="DEFAULT_GROUP") -> bytes:
    return b"config\x00" + b"\x00".join(s.encode("utf-8") for s in (namespace, group, data_id))


def score(member: str, key: bytes) -> int:
    return xxh64(member.encode("utf-8") + b"\x01" + key)


def owner(members, key: bytes) -> str:
    # highest score; ties: larger id by code point
    return max(members, key=lambda m: (score(m, key), m))


def service_owner_from_cluster(cluster_result, service, namespace="public", group="DEFAULT_GROUP"):
    """6 rule 4 / 2.10: hash over the ids of the members whose state is "up"."""
    ups = [m for m in cluster_result["members"] if m["state"] == "up"]
    o = owner([m["id"] for m in ups], service_key(service, namespace, group))
    return next(m for m in ups if m["id"] == o)


def config_owner_from_cluster(cluster_result, data_id, namespace="public", group="DEFAULT_GROUP"):
    """2.15 / 6.1: configured members not "down" (and self), hashed under `announced`."""
    names = []
    for m in cluster_result["members"]:
        if m.get("self") or (m.get("configured") and m["state"] != "down"):
            if m.get("announced"):
                names.append(m["announced"])
    return owner(names, config_key(data_id, namespace, group))


# --------------------------------------------------------------------------------------
# Topics (4.1, 4.5)
def service_topic(service, namespace="public", group="DEFAULT_GROUP") -> bytes:
    return (namespace + "\x00" + group + "\x00" + service + "\x00").encode("utf-8")


def config_topic(data_id, namespace="public", group="DEFAULT_GROUP") -> bytes:
    return ("\x00config\x00" + namespace + "\x00" + group + "\x00" + data_id + "\x00").encode("utf-8")


# --------------------------------------------------------------------------------------
# CURVE keys (1.2 / SECURITY.md "Keys": ZeroMQ certificates, the values between quotes)
def read_cert(path):
    text = open(path, encoding="utf-8").read()
    out = {}
    for k in ("public-key", "secret-key"):
        m = re.search(r'%s\s*=\s*"([^"]{40})"' % k, text)
        if m:
            out[k] = m.group(1)
    return out


class Curve:
    def __init__(self, server_public: str, public: str, secret: str):
        self.server_public, self.public, self.secret = server_public, public, secret

    @classmethod
    def from_files(cls, client_key_file, server_pub_file):
        c = read_cert(client_key_file)
        s = read_cert(server_pub_file)
        return cls(s["public-key"], c["public-key"], c["secret-key"])

    def apply(self, sock):
        sock.curve_serverkey = self.server_public.encode()
        sock.curve_publickey = self.public.encode()
        sock.curve_secretkey = self.secret.encode()


_ids = itertools.count(1)  # 1.5: one counter per client, starting at 1, kept across connections


class Timeout(Exception):
    pass


class DocClient:
    """A DEALER client: [b"", body] out, [b"", reply] back, replies matched by id (1.3)."""

    def __init__(self, address: str, curve: Curve | None = None, ctx=None):
        self.ctx = ctx or zmq.Context.instance()
        self.address = address
        self.curve = curve
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        if curve:
            curve.apply(self.sock)
        self.sock.connect("tcp://" + address)
        self.kept = {}  # replies that arrived for other pending ids
        self.stray = []  # replies with no pending id (e.g. id 0)

    def close(self):
        self.sock.close(linger=0)

    def send(self, op, **fields) -> int:
        rid = fields.pop("id", None) or next(_ids)
        body = {"v": 1, "id": rid, "op": op}
        body.update({k: v for k, v in fields.items()})
        self.sock.send_multipart([b"", msgpack.packb(body, use_bin_type=True)])
        return rid

    def send_frames(self, frames):
        self.sock.send_multipart(frames)

    def recv_frames(self, timeout=3.0):
        if not self.sock.poll(int(timeout * 1000)):
            raise Timeout("no reply from %s within %.1fs" % (self.address, timeout))
        return self.sock.recv_multipart()

    def wait(self, rid, timeout=3.0):
        end = time.monotonic() + timeout
        while True:
            if rid in self.kept:
                return self.kept.pop(rid)
            left = end - time.monotonic()
            if left <= 0:
                raise Timeout("no reply to id %d from %s" % (rid, self.address))
            frames = self.recv_frames(left)
            reply = msgpack.unpackb(frames[-1], raw=False, strict_map_key=False)
            if reply.get("id") == rid:
                return reply
            if reply.get("id"):
                self.kept[reply["id"]] = reply
            else:
                self.stray.append(reply)

    def call(self, op, timeout=3.0, **fields):
        return self.wait(self.send(op, **fields), timeout)

    def ok(self, op, timeout=3.0, **fields):
        r = self.call(op, timeout=timeout, **fields)
        if not r.get("ok"):
            raise RuntimeError("%s failed: %r" % (op, r.get("error")))
        return r["result"]

    # convenience wrappers (section 2)
    def ping(self):
        return self.ok("ping")

    def register(self, service, ip, port, **kw):
        return self.call("register", service=service, ip=ip, port=port, **kw)

    def beat(self, service, ip, port, **kw):
        return self.call("beat", service=service, ip=ip, port=port, **kw)

    def deregister(self, service, ip, port, **kw):
        return self.call("deregister", service=service, ip=ip, port=port, **kw)

    def instances(self, service, **kw):
        return self.call("instances", service=service, **kw)

    def cluster(self):
        return self.ok("cluster")


class DocSub:
    """A SUB on P+1 (4.1): connect to one node at a time."""

    def __init__(self, notify_address: str, curve: Curve | None = None, ctx=None):
        self.ctx = ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.linger = 0
        if curve:
            curve.apply(self.sock)
        self.address = notify_address
        self.sock.connect("tcp://" + notify_address)

    def subscribe(self, topic: bytes):
        self.sock.setsockopt(zmq.SUBSCRIBE, topic)

    def move(self, new_address):
        """5.3 step 2: disconnect from the old node, then connect to the new one."""
        self.sock.disconnect("tcp://" + self.address)
        self.address = new_address
        self.sock.connect("tcp://" + new_address)

    def recv(self, timeout=3.0):
        if not self.sock.poll(int(timeout * 1000)):
            return None
        frames = self.sock.recv_multipart()
        return frames[0], frames[1], msgpack.unpackb(frames[1], raw=False, strict_map_key=False)

    def recv_until(self, pred, timeout=5.0):
        end = time.monotonic() + timeout
        seen = []
        while time.monotonic() < end:
            m = self.recv(max(0.01, end - time.monotonic()))
            if m is None:
                break
            seen.append(m)
            if pred(m[2]):
                return m, seen
        return None, seen

    def close(self):
        self.sock.close(linger=0)


def notify_address(address: str) -> str:
    host, port = address.rsplit(":", 1)
    return "%s:%d" % (host, int(port) + 1)


def new_session_id() -> str:
    return secrets.token_hex(16)


def new_request_id() -> str:
    return secrets.token_hex(16)


def now_ms() -> int:
    return int(time.time() * 1000)


def hexdump(b: bytes) -> str:
    return " ".join("%02x" % c for c in b)


# --------------------------------------------------------------------------------------
# Starting nodes with the CLI (README: "meshreg node --port P --peer ...").
import shutil
import socket
import subprocess
import tempfile


def _port_free(p):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_base(count=1, start=None):
    """count nodes' worth of 4 consecutive free ports (P..P+3 each)."""
    import random
    for _ in range(500):
        base = start or random.randrange(20000, 60000, 4)
        start = None
        ports = range(base, base + 4 * count)
        if all(_port_free(p) for p in ports):
            return base
    raise RuntimeError("no free ports")


class Node:
    def __init__(self, port, peers=(), extra=(), data_dir=None, log=None):
        self.port = port
        self.address = "127.0.0.1:%d" % port
        self.tmp = data_dir or tempfile.mkdtemp(prefix="r86node%d_" % port)
        self.log = log or os.path.join(self.tmp, "node.log")
        args = ["meshreg", "node", "--host", "127.0.0.1", "--port", str(port), "--data-dir", self.tmp]
        for p in peers:
            args += ["--peer", p]
        args += list(extra)
        self.args = args
        self.proc = subprocess.Popen(args, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def stop(self, sig=None):
        if self.proc.poll() is None:
            self.proc.terminate() if sig is None else self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def wait_ready(address, curve=None, timeout=20.0, need_config=True):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        c = DocClient(address, curve=curve, ctx=zmq.Context.instance())
        try:
            r = c.call("ping", timeout=0.5)
            last = r
            if r.get("ok") and r["result"].get("ready", True) and (
                    not need_config or r["result"].get("config_ready", True)):
                return r["result"]
        except Timeout:
            pass
        finally:
            c.close()
        time.sleep(0.1)
    raise RuntimeError("node %s not ready: %r" % (address, last))


def start_cluster(n=3, extra=()):
    base = free_base(n)
    addrs = ["127.0.0.1:%d" % (base + 4 * i) for i in range(n)]
    peers = addrs if n > 1 else ()
    nodes = [Node(base + 4 * i, peers=peers, extra=extra) for i in range(n)]
    return nodes
