"""meshreg/metrics: stats -> Prometheus text exposition (review24 F5), checked against
the format's rules with a strict little parser (no prometheus_client dependency)."""

from __future__ import annotations

import copy
import re
from typing import Any

from meshreg.metrics import prometheus_down, prometheus_refused, prometheus_text

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
SAMPLE = re.compile(rf"^({NAME})\{{({LABEL}(?:,{LABEL})*)?\}} (\S+)$")

STATS: dict[str, Any] = {
    "address": "127.0.0.1:7800",
    "node_id": "n1",
    "version": "0.1.0",
    "epoch": 5603801423539229881,
    "uptime": 12.5,
    "ready": True,
    "process": {"resident_bytes": 52_428_800, "cpu_seconds": 3.5, "open_fds": 40,
                "max_fds": 1024, "threads": 5},  # fmt: skip
    "memory_releases": 1,
    "services": 3,
    "instances": {"total": 5, "healthy": 4, "unhealthy": 1},
    "requests": {"stats": 2, "register": 7},
    "errors": {"NOT_FOUND": 1},
    "errors_total": 1,
    "beats_total": 40,
    "beats_per_second": 0.5,
    "notifications": 9,
    "subscribers": 2,
    "watched_services": 1,
    "members": ["n1", "n2"],
    "health_judgment": "judging",
    "clock_lead": 0.0,
    "clock_skewed": False,
    "forwarded": 4,
    "replication_in": 11,
    "rejected_quota": {"max_sessions": 2},
    "sessions": {"count": 2, "instances": 4, "renewals": 30, "renewals_per_second": 0.4,
                 "silent": 0, "forgotten": 1},
    "self_preservation": {"active": False, "state": "normal", "silent": 0, "of": 5,
                          "times_entered": 0, "times_expired": 0, "active_for": None},
    "timings": {"check_interval": 5.0, "unhealthy_after": 15.0, "evict_after": 30.0},
    "replies": {"waiting": 0, "dropped_full": 3},
    "security": "loopback",
    "config": {"ready": True, "members": 3, "majority": 2, "members_up": 2, "learners": 0,
               "learner_of": 1, "configs": 6, "committed": 5, "data_dir": "/var/lib/x",
               "rejected": {"cas_conflict": 2}, "configs_by_namespace": {"public": 6},
               "commit_failing": False, "commit_latency_ms_max": 1.25},
}  # fmt: skip
CLUSTER: dict[str, Any] = {
    "node": "n1",
    "ready": True,
    "members": [
        {"id": "n1", "address": "127.0.0.1:7800", "state": "up", "self": True, "lag": 0,
         "last_heard": 0.0, "clock_offset": None},
        {"id": "n2", "address": "127.0.0.1:7810", "state": "up", "self": False, "lag": 7,
         "last_heard": 0.25, "clock_offset": -0.5},
        {"id": "", "address": "127.0.0.1:7820", "state": "down", "self": False, "lag": 0,
         "last_heard": None, "clock_offset": None},
    ],
}  # fmt: skip


def parse(text: str) -> dict[str, tuple[str, list[tuple[dict[str, str], float]]]]:
    """name -> (type, samples); fails on anything the text format does not allow."""
    assert text.endswith("\n")
    families: dict[str, tuple[str, list[tuple[dict[str, str], float]]]] = {}
    current = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in families, f"family {name} twice"
            kind = lines[i + 1].split(" ")
            assert kind[:3] == ["#", "TYPE", name], lines[i + 1]
            assert kind[3] in ("counter", "gauge", "untyped")
            if kind[3] == "counter":
                assert name.endswith("_total"), name
            families[name] = (kind[3], [])
            current = name
            i += 2
            continue
        match = SAMPLE.match(line)
        assert match, f"bad sample line: {line!r}"
        assert match.group(1) == current, f"{match.group(1)} outside its family"
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match[2] or ""))
        families[current][1].append((labels, float(match.group(3))))
        i += 1
    return families


def value(families: dict[str, Any], name: str, **labels: str) -> float:
    matches = [v for ls, v in families[name][1] if all(ls.get(k) == x for k, x in labels.items())]
    assert len(matches) == 1, (name, labels, families.get(name))
    return matches[0]


def test_the_key_metrics_are_typed_and_labelled() -> None:
    families = parse(prometheus_text(STATS, CLUSTER))
    assert value(families, "meshreg_instances", state="healthy") == 4
    assert value(families, "meshreg_instances", state="unhealthy") == 1
    assert families["meshreg_instances"][0] == "gauge"
    assert value(families, "meshreg_requests_total", op="register") == 7
    assert families["meshreg_requests_total"][0] == "counter"
    assert value(families, "meshreg_errors_total", code="NOT_FOUND") == 1
    assert value(families, "meshreg_rejected_quota_total", reason="max_sessions") == 2
    assert value(families, "meshreg_services") == 3
    assert value(families, "meshreg_sessions") == 2
    assert value(families, "meshreg_subscribers") == 2
    assert value(families, "meshreg_session_renewals_per_second") == 0.4
    assert value(families, "meshreg_uptime_seconds") == 12.5
    assert value(families, "meshreg_clock_lead_seconds") == 0.0
    assert value(families, "meshreg_self_preservation_active") == 0
    assert value(families, "meshreg_self_preservation_state", state="normal") == 1
    assert value(families, "meshreg_self_preservation_state", state="preserving") == 0
    assert value(families, "meshreg_config_majority") == 2
    assert value(families, "meshreg_config_members_up") == 2
    assert value(families, "meshreg_config_ready") == 1
    assert value(families, "meshreg_config_has_majority") == 1
    assert value(families, "meshreg_config_learner_of") == 1
    assert value(families, "meshreg_config_rejected_total", reason="cas_conflict") == 2
    assert value(families, "meshreg_config_data_ids_by_namespace", namespace="public") == 6
    assert value(families, "meshreg_member_replication_lag", member="127.0.0.1:7810") == 7
    assert value(families, "meshreg_member_up", member="127.0.0.1:7820") == 0
    assert value(families, "meshreg_member_clock_offset_seconds", member="127.0.0.1:7810") == -0.5
    lag_members = {ls["member"] for ls, _ in families["meshreg_member_replication_lag"][1]}
    assert lag_members == {"127.0.0.1:7810", "127.0.0.1:7820"}  # not itself
    heard = {ls["member"] for ls, _ in families["meshreg_member_last_heard_seconds"][1]}
    assert heard == {"127.0.0.1:7810"}  # never heard: no sample
    assert value(families, "meshreg_info", version="0.1.0", node_id="n1") == 1
    # the process's usage, prefixed (node_exporter exports its own process_* beside)
    assert value(families, "meshreg_process_resident_memory_bytes") == 52_428_800
    assert families["meshreg_process_cpu_seconds_total"][0] == "counter"
    assert value(families, "meshreg_process_open_fds") == 40
    assert value(families, "meshreg_process_max_fds") == 1024
    assert value(families, "meshreg_memory_releases_total") == 1
    assert not any(name.startswith("process_") for name in families)


def test_every_sample_names_the_node_and_the_rest_is_untyped() -> None:
    families = parse(prometheus_text(STATS, CLUSTER))
    for _kind, samples in families.values():
        assert all(labels["node"] == "127.0.0.1:7800" for labels, _ in samples)
    assert families["meshreg_stats_replies_dropped_full"][0] == "untyped"
    assert value(families, "meshreg_stats_config_commit_latency_ms_max") == 1.25
    assert value(families, "meshreg_stats_sessions_forgotten") == 1
    # strings, nil and what a typed family covers are not repeated as untyped
    assert not [n for n in families if "security" in n or "data_dir" in n or "active_for" in n]
    assert "meshreg_stats_instances_healthy" not in families
    assert "meshreg_stats_epoch" not in families


def test_output_is_deterministic_whatever_the_key_order() -> None:
    shuffled = copy.deepcopy(STATS)
    shuffled["requests"] = dict(reversed(list(STATS["requests"].items())))
    shuffled = dict(reversed(list(shuffled.items())))
    assert prometheus_text(shuffled, CLUSTER) == prometheus_text(STATS, CLUSTER)


def test_label_values_are_escaped() -> None:
    stats = {**STATS, "requests": {'we"ird\\op\n': 1}}
    text = prometheus_text(stats)
    assert 'op="we\\"ird\\\\op\\n"' in text
    parse(text)


def test_a_lone_node_without_cluster_or_config_parts() -> None:
    stats = {k: v for k, v in STATS.items() if k not in ("config", "members", "node_id")}
    families = parse(prometheus_text(stats))
    assert value(families, "meshreg_up", node="127.0.0.1:7800") == 1
    assert "meshreg_member_up" not in families and "meshreg_config_ready" not in families


def test_a_node_that_did_not_answer_is_up_0() -> None:
    families = parse(prometheus_down("127.0.0.1:7800"))
    assert families == {"meshreg_up": ("gauge", [({"node": "127.0.0.1:7800"}, 0.0)])}


def test_a_node_that_refused_the_read_is_up_and_says_why() -> None:
    families = parse(prometheus_refused("127.0.0.1:7800", "PERMISSION_DENIED"))
    assert families == {
        "meshreg_up": ("gauge", [({"node": "127.0.0.1:7800"}, 1.0)]),
        "meshreg_stats_refused": (
            "gauge", [({"node": "127.0.0.1:7800", "code": "PERMISSION_DENIED"}, 1.0)]
        ),
    }
