"""review20 F3: a provider that reaches every node (its client given all three servers, as
the README recommends) lost all its session's instances on the majority side of a
partition that cut off only the node it happened to talk to: marked unhealthy, then
evicted on both majority nodes for as long as the cut lasted, though the provider was
alive and reached them (its renewals went to its server only, which could pass nothing
on).  Now a node that sees no majority of the configured members says so in its renewal
replies, and the client moves to a server that sees one (docs/PROTOCOL.md 2.3a).

DISTRO.md, "What each side of a partition shows", majority: "Nothing that beats on the
majority side is ever missing or unhealthy there."

Lab (root, iproute2, iptables; skipped otherwise): namespaces n1..n3 run the nodes, n4 the
provider and a sampler; n1 <-> {n2, n3} dropped both ways (iptables in each namespace), n4
reaches all.  Timings in the product's proportions (peer timeout a fifth of
unhealthy_after): check 0.5, unhealthy 5, evict 10, peer timeout 1, renewals 0.5 s.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import netlab  # noqa: E402
from helpers import wait_until  # noqa: E402

CUT = 12.0  # s: > peer_timeout + evict_after, the majority's takeover and eviction time
SERVICES = "pp0,pp1,pp2"
LIVE = {f"10.20.0.1:{1000 + i}" for i in range(2)}


def _samples(path: Path) -> list[tuple[float, str, str, dict[str, bool] | None]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(tuple(json.loads(line)))
        except ValueError:  # a line being written
            continue
    return out  # type: ignore[return-value]


@pytest.mark.chaos
@pytest.mark.timeout(150)
def test_a_session_client_whose_server_is_cut_off_keeps_its_instances_on_the_majority(
    tmp_path: Path,
) -> None:
    reason = netlab.unavailable_reason() or netlab.impair_unavailable_reason()
    if reason:
        pytest.skip(reason)
    ipt = netlab.iptables_command()
    assert ipt is not None
    lab = netlab.Lab(4, tmp_path)
    rules: list[tuple[int, list[str]]] = []
    samples = tmp_path / "samples.jsonl"
    try:
        lab.up()
        addrs = [f"{lab.addresses[i]}:7800" for i in range(3)]
        majority = set(addrs[1:])
        peers = sum((["--peer", a] for a in addrs), [])
        for j in range(3):
            lab.spawn(j, f"node{j}", [
                sys.executable, "-m", "meshreg", "node", "--host", lab.addresses[j],
                "--port", "7800", *peers, "--check-interval", "0.5", "--unhealthy-after", "5",
                "--evict-after", "10", "--peer-timeout", "1", "--insecure",
                "--data-dir", str(tmp_path / f"d{j}"),
            ])  # fmt: skip
        servers = ",".join(addrs)  # n1 first: the client talks to n1
        prov = lab.spawn(3, "provider", [
            sys.executable, str(HERE / "cutoff_provider.py"), "--servers", servers,
            "--services", SERVICES, "--ip", "10.20.0.1", "--max", "120",
        ], pipe=True)  # fmt: skip
        line = netlab.read_line(prov, 40)
        assert line == "ready", f"{prov.name}: {line!r}\n{prov.log_tail()}"
        lab.spawn(3, "sampler", [sys.executable, str(HERE / "cutoff_sampler.py"), servers,
                  SERVICES, str(CUT + 40), str(samples)])  # fmt: skip

        def listed_on_the_majority() -> bool:  # every live instance, healthy, on n2 and n3,
            # in every service (the latest sample of each): replication is asynchronous
            latest: dict[tuple[str, str], bool] = {}
            for _, node, svc, listing in _samples(samples):
                if node in majority:
                    latest[node, svc] = bool(listing) and all(listing.get(i) for i in LIVE)
            return len(latest) == 2 * len(SERVICES.split(",")) and all(latest.values())

        wait_until(listed_on_the_majority, 30, 0.2, "the provider's instances on n2 and n3")
        cut = time.monotonic()
        for x, y in ((0, 1), (0, 2), (1, 0), (2, 0)):
            rule = ["INPUT", "-i", "eth0", "-s", lab.addresses[y], "-j", "DROP"]
            netlab.run("ip", "netns", "exec", lab.namespaces[x], ipt, "-A", *rule)
            rules.append((x, rule))
        heal = cut + CUT  # the cut lasts CUT seconds (the fault's length)
        wait_until(lambda: time.monotonic() >= heal, CUT + 5, 0.1, "the end of the cut")
    finally:
        for x, rule in rules:
            netlab.run("ip", "netns", "exec", lab.namespaces[x], ipt, "-D", *rule, check=False)
        log = prov.log_tail(40) if "prov" in locals() else ""
        lab.close()
    bad: dict[tuple[str, str], list[float]] = {}
    checked = 0
    for t, node, _svc, listing in _samples(samples):
        if node not in majority or listing is None or not cut <= t <= heal:
            continue
        checked += 1
        for inst in LIVE:
            if listing.get(inst) is not True:
                state = "missing" if inst not in listing else "unhealthy"
                bad.setdefault((node, f"{inst} {state}"), []).append(round(t - cut, 1))
    assert checked > 50, f"too few samples of the majority ({checked})"
    assert not bad, (
        f"live instances of a provider that reaches every node, cut {CUT:g} s between n1 "
        "(its server) and n2/n3: not listed healthy on the majority, seconds after the cut: "
        + "; ".join(
            f"{n} {i}: {v[0]}..{v[-1]} ({len(v)} samples)" for (n, i), v in sorted(bad.items())
        )
        + f"\nprovider log:\n{log}"
    )
