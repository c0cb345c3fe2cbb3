"""A node's ``stats`` (and ``cluster``) as Prometheus text exposition: what
``meshreg stats --format prometheus`` prints, for node_exporter's textfile collector
(meshreg has no HTTP by design: a timer writes the text to a ``.prom`` file; README
"Monitoring", deploy/meshreg-metrics.service).

Theory of operation
-------------------
``prometheus_text(stats, cluster)`` is a pure function of the two replies (as
``meshreg stats --json`` and ``meshreg cluster --json`` print them): no I/O, no clock.

* **Typed families first** (``_FAMILIES``): the metrics an operator alerts on, each with
  its ``# HELP`` and ``# TYPE``: counters (``*_total``: only grow while the node runs; a
  restart resets them, which Prometheus's ``rate()`` handles) and gauges.  Maps become
  labels: requests by ``op``, errors by ``code``, quota refusals by ``reason``, instances
  by ``state``, replication lag, state and last beacon by ``member`` (from ``cluster``).
* **Every other number of stats** follows as an ``untyped`` metric named after its path
  (``meshreg_stats_<key>[_<subkey>]``), so nothing a later version adds is lost: alert on
  the typed ones, read the rest.
* Every sample carries ``node="<host:port>"`` (the node's address, as clients reach it):
  several nodes on one host each write their own file, and node_exporter refuses two
  files with one series.  ``prometheus_down(address)`` is the text for a node that did
  not answer (``meshreg_up`` 0), so a stopped node is not hidden behind its last file.
* Booleans are 1/0; strings and nil are left out (``meshreg_info`` carries the version).
* **Deterministic**: families in table order, then the untyped ones sorted by name;
  samples of a family sorted by their labels.  The same replies give the same bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meshreg.errors import ErrorCode

PREFIX = "meshreg_"

Sample = tuple[dict[str, str], float | int]


@dataclass(frozen=True)
class Family:
    name: str  # without the prefix
    kind: str  # "counter" or "gauge"
    help: str
    samples: Callable[[Mapping[str, Any], Mapping[str, Any]], list[Sample]]
    covers: tuple[str, ...] = ()  # stats paths ("a.b") it exports: not untyped again


def _get(tree: Mapping[str, Any], path: str) -> Any:
    value: Any = tree
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def _one(path: str) -> Callable[[Mapping[str, Any], Mapping[str, Any]], list[Sample]]:
    def samples(stats: Mapping[str, Any], cluster: Mapping[str, Any]) -> list[Sample]:
        value = _number(_get(stats, path))
        return [] if value is None else [({}, value)]

    return samples


def _by(
    path: str, label: str, zeros: Callable[[Mapping[str, Any]], Iterable[str]] | None = None
) -> Callable[[Mapping[str, Any], Mapping[str, Any]], list[Sample]]:
    """A map of counts -> one sample per key, labelled ``label``; ``zeros``: the keys a
    counter exports at 0 before its first event (a series born at 1 shows no increase
    to ``rate()``, and a family with no sample was not exported at all: review58 F3)."""

    def samples(stats: Mapping[str, Any], cluster: Mapping[str, Any]) -> list[Sample]:
        counts = _get(stats, path)
        if not isinstance(counts, Mapping):
            return []
        out: list[Sample] = []
        for key, value in counts.items():
            number = _number(value)
            if number is not None:
                out.append(({label: str(key)}, number))
        if zeros is not None:
            out.extend(({label: key}, 0) for key in zeros(stats) if key not in counts)
        return out

    return samples


def _error_names(stats: Mapping[str, Any]) -> Iterable[str]:
    return (code.name for code in ErrorCode)


def _limit_names(path: str) -> Callable[[Mapping[str, Any]], Iterable[str]]:
    """The quota names a node's ``stats`` lists under ``path`` (its limits' keys)."""

    def names(stats: Mapping[str, Any]) -> Iterable[str]:
        limits = _get(stats, path)
        if not isinstance(limits, Mapping):
            return ()
        return (str(k) for k in limits if str(k).startswith("max_"))

    return names


def _fixed(
    pairs: Iterable[tuple[str, str]], label: str
) -> Callable[[Mapping[str, Any], Mapping[str, Any]], list[Sample]]:
    """(stats path, label value) -> one sample each (instances by state, ...)."""
    pairs = tuple(pairs)

    def samples(stats: Mapping[str, Any], cluster: Mapping[str, Any]) -> list[Sample]:
        out: list[Sample] = []
        for path, value in pairs:
            number = _number(_get(stats, path))
            if number is not None:
                out.append(({label: value}, number))
        return out

    return samples


def _info(stats: Mapping[str, Any], cluster: Mapping[str, Any]) -> list[Sample]:
    labels = {k: str(stats[k]) for k in ("version", "node_id") if isinstance(stats.get(k), str)}
    return [(labels, 1)]


def _preservation_state(stats: Mapping[str, Any], cluster: Mapping[str, Any]) -> list[Sample]:
    state = _get(stats, "self_preservation.state")
    if not isinstance(state, str):
        return []
    known = ("normal", "preserving", "expired")  # core/preservation PreservationState
    states = known if state in known else (*known, state)
    return [({"state": s}, int(s == state)) for s in states]


def _config_majority(stats: Mapping[str, Any], cluster: Mapping[str, Any]) -> list[Sample]:
    up, majority = _get(stats, "config.members_up"), _get(stats, "config.majority")
    if not isinstance(up, int) or not isinstance(majority, int):
        return []
    return [({}, int(up >= majority))]


def _members(convert: Callable[[Mapping[str, Any]], Any]) -> Callable[..., list[Sample]]:
    """Per-member samples from ``cluster``'s member maps (labelled by address)."""

    def samples(stats: Mapping[str, Any], cluster: Mapping[str, Any]) -> list[Sample]:
        out: list[Sample] = []
        members = cluster.get("members")
        for member in members if isinstance(members, list) else ():
            if not isinstance(member, Mapping) or member.get("self"):
                continue
            address = member.get("address")
            number = _number(convert(member))
            if isinstance(address, str) and number is not None:
                out.append(({"member": address}, number))
        return out

    return samples


_FAMILIES: tuple[Family, ...] = (
    Family("up", "gauge", "1: the node answered (stats --output writes 0 when it does not)",
           lambda s, c: [({}, 1)]),
    Family("info", "gauge", "the node's version and node id (always 1)", _info,
           ("epoch",)),
    Family("uptime_seconds", "gauge", "seconds since the node started", _one("uptime"),
           ("uptime",)),
    Family("ready", "gauge", "1 once the node has caught up from its peers (registry)",
           _one("ready"), ("ready",)),
    Family("services", "gauge", "services in the registry", _one("services"), ("services",)),
    Family("instances", "gauge", "instances in the registry, by health",
           _fixed((("instances.healthy", "healthy"), ("instances.unhealthy", "unhealthy")),
                  "state"),
           ("instances.healthy", "instances.unhealthy", "instances.total")),
    Family("subscribers", "gauge", "client subscriptions to registry services",
           _one("subscribers"), ("subscribers",)),
    Family("watched_services", "gauge", "services with at least one subscriber",
           _one("watched_services"), ("watched_services",)),
    Family("sessions", "gauge", "client sessions held", _one("sessions.count"),
           ("sessions.count",)),
    Family("session_instances", "gauge", "instances kept alive by client sessions",
           _one("sessions.instances"), ("sessions.instances",)),
    Family("sessions_silent", "gauge", "client sessions silent at the last health check",
           _one("sessions.silent"), ("sessions.silent",)),
    Family("session_renewals_total", "counter", "session renewals received from clients",
           _one("sessions.renewals"), ("sessions.renewals",)),
    Family("session_renewals_per_second", "gauge",
           "session renewals per second, averaged over about 10 s",
           _one("sessions.renewals_per_second"), ("sessions.renewals_per_second",)),
    Family("beats_total", "counter", "instance beats received", _one("beats_total"),
           ("beats_total",)),
    Family("beats_per_second", "gauge", "instance beats per second, averaged over about 10 s",
           _one("beats_per_second"), ("beats_per_second",)),
    Family("requests_total", "counter", "requests served, by op", _by("requests", "op"),
           ("requests",)),
    Family("errors_total", "counter", "requests refused with an error, by wire code",
           _by("errors", "code", _error_names), ("errors", "errors_total")),
    Family("rejected_quota_total", "counter", "writes refused by a quota, by limit",
           _by("rejected_quota", "reason", _limit_names("limits")), ("rejected_quota",)),
    Family("subscriptions_refused_total", "counter", "subscriptions refused, by reason",
           _by("subscriptions_refused", "reason"), ("subscriptions_refused",)),
    Family("notifications_total", "counter", "change notifications published to clients",
           _one("notifications"), ("notifications",)),
    Family("self_preservation_active", "gauge",
           "1 while self-preservation holds evictions (most instances silent at once)",
           _one("self_preservation.active"), ("self_preservation.active",)),
    Family("self_preservation_state", "gauge", "the self-preservation state (1: current)",
           _preservation_state),
    Family("self_preservation_silent_instances", "gauge",
           "instances silent at the last check (of those this node is responsible for)",
           _one("self_preservation.silent"), ("self_preservation.silent",)),
    Family("self_preservation_entered_total", "counter", "times self-preservation turned on",
           _one("self_preservation.times_entered"), ("self_preservation.times_entered",)),
    Family("self_preservation_expired_total", "counter",
           "times self-preservation lasted past self_preservation_max",
           _one("self_preservation.times_expired"), ("self_preservation.times_expired",)),
    Family("members", "gauge", "cluster members the node hashes over (itself included)",
           lambda s, c: [({}, len(s["members"]))] if isinstance(s.get("members"), list)
           else []),
    Family("member_up", "gauge", "1 while a peer is up and ready (cluster view)",
           _members(lambda m: m.get("state") == "up")),
    Family("member_replication_lag", "gauge",
           "deltas a peer announced that this node has not applied yet",
           _members(lambda m: m.get("lag"))),
    Family("member_last_heard_seconds", "gauge", "seconds since a peer's last beacon",
           _members(lambda m: m.get("last_heard"))),
    Family("member_clock_offset_seconds", "gauge",
           "a peer's wall clock minus this node's, from its last beacon",
           _members(lambda m: m.get("clock_offset"))),
    Family("clock_lead_seconds", "gauge",
           "how far this node's clock runs ahead of its peers' (judged by theirs)",
           _one("clock_lead"), ("clock_lead",)),
    Family("clock_skewed", "gauge", "1 while this node's clock is off a majority's",
           _one("clock_skewed"), ("clock_skewed",)),
    Family("forwarded_total", "counter", "writes forwarded to their responsible node",
           _one("forwarded"), ("forwarded",)),
    Family("replication_in_total", "counter", "replicated changes applied from peers",
           _one("replication_in"), ("replication_in",)),
    Family("replication_out_total", "counter", "changes replicated to peers",
           _one("replication_out"), ("replication_out",)),
    Family("replication_gaps_total", "counter", "gaps seen in peers' replication streams",
           _one("replication_gaps"), ("replication_gaps",)),
    Family("digest_mismatches_total", "counter", "anti-entropy digests that differed",
           _one("digest_mismatches"), ("digest_mismatches",)),
    Family("stalls_total", "counter", "times this node was stalled (stopped, frozen)",
           _one("stalls"), ("stalls",)),
    Family("config_ready", "gauge",
           "1 once the config center has caught up from a majority (serves config reads)",
           _one("config.ready"), ("config.ready",)),
    Family("config_members", "gauge", "configured members of the config center",
           _one("config.members"), ("config.members",)),
    Family("config_members_up", "gauge", "configured members up, this node included",
           _one("config.members_up"), ("config.members_up",)),
    Family("config_majority", "gauge", "members a config write needs",
           _one("config.majority"), ("config.majority",)),
    Family("config_has_majority", "gauge", "1 while config writes can reach a majority",
           _config_majority),
    Family("config_learners", "gauge", "members up that this node's list does not name",
           _one("config.learners"), ("config.learners",)),
    Family("config_learner_of", "gauge",
           "configured peers whose lists do not name this node (>0: it is their learner)",
           _one("config.learner_of"), ("config.learner_of",)),
    Family("config_data_ids", "gauge", "live config data ids", _one("config.configs"),
           ("config.configs",)),
    Family("config_data_ids_by_namespace", "gauge",
           "live config data ids of the largest namespaces (at most 20)",
           _by("config.configs_by_namespace", "namespace"), ("config.configs_by_namespace",)),
    Family("config_committed_total", "counter",
           "config writes acknowledged by a majority (as the writer)",
           _one("config.committed"), ("config.committed",)),
    Family("config_rejected_total", "counter", "config requests refused, by reason",
           _by("config.rejected", "reason", _limit_names("config.limits")),
           ("config.rejected",)),
    Family("config_commit_failing", "gauge", "1 while saving configs to disk fails",
           _one("config.commit_failing"), ("config.commit_failing",)),
    Family("process_resident_memory_bytes", "gauge", "the node process's resident memory",
           _one("process.resident_bytes"), ("process.resident_bytes",)),
    Family("process_cpu_seconds_total", "counter",
           "CPU seconds the node process used (user and system)",
           _one("process.cpu_seconds"), ("process.cpu_seconds",)),
    Family("process_open_fds", "gauge", "descriptors the node process holds open",
           _one("process.open_fds"), ("process.open_fds",)),
    Family("process_max_fds", "gauge", "the node process's descriptor limit (0: none)",
           _one("process.max_fds"), ("process.max_fds",)),
    Family("process_threads", "gauge", "threads of the node process (libzmq's included)",
           _one("process.threads"), ("process.threads",)),
    Family("memory_releases_total", "counter",
           "times the node gave memory back after many subscriptions or instances ended",
           _one("memory_releases"), ("memory_releases",)),
    Family("limit", "gauge", "the node's [limits], by name", _by("limits", "name"),
           ("limits",)),
    Family("config_limit", "gauge", "the config center's limits, by name",
           _by("config.limits", "name"), ("config.limits",)),
    Family("timing_seconds", "gauge", "the node's health timings, by name",
           _by("timings", "name"), ("timings",)),
)  # fmt: skip


def _leaves(tree: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _leaves(value, path + ".")
        else:
            yield path, value


_NAME_BAD = re.compile(r"[^a-zA-Z0-9_]")


def _covered(path: str, covers: set[str]) -> bool:
    parts = path.split(".")
    return any(".".join(parts[:i]) in covers for i in range(1, len(parts) + 1))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _format_value(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _line(name: str, labels: Mapping[str, str], value: float | int) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return f"{name}{{{inner}}} {_format_value(value)}"


def prometheus_text(stats: Mapping[str, Any], cluster: Mapping[str, Any] | None = None) -> str:
    """The Prometheus text exposition (format 0.0.4) of a ``stats`` reply and, for the
    per-member metrics, a ``cluster`` reply of the same node."""
    cluster = cluster or {}
    base = {"node": str(stats.get("address") or "")}
    out: list[str] = []
    covers: set[str] = {"address", "version", "node_id", "members", "health_judgment"}
    for family in _FAMILIES:
        covers.update(family.covers)
        samples = family.samples(stats, cluster)
        if not samples:
            continue
        name = PREFIX + family.name
        out.append(f"# HELP {name} {family.help}")
        out.append(f"# TYPE {name} {family.kind}")
        rows = sorted(
            (tuple(sorted({**base, **labels}.items())), value) for labels, value in samples
        )
        out.extend(_line(name, dict(labels), value) for labels, value in rows)
    untyped: dict[str, tuple[str, float | int]] = {}
    for path, value in _leaves(stats):
        number = _number(value)
        if number is None or _covered(path, covers):
            continue
        name = PREFIX + "stats_" + _NAME_BAD.sub("_", path.replace(".", "_"))
        untyped.setdefault(name, (path, number))
    for name in sorted(untyped):
        path, number = untyped[name]
        out.append(f"# HELP {name} stats key {_escape_help(path)} (docs/PROTOCOL.md, stats)")
        out.append(f"# TYPE {name} untyped")
        out.append(_line(name, base, number))
    return "\n".join(out) + "\n"


def prometheus_down(address: str) -> str:
    """The exposition for a node that did not answer: ``meshreg_up`` 0 alone."""
    name = PREFIX + _FAMILIES[0].name
    return (
        f"# HELP {name} {_FAMILIES[0].help}\n# TYPE {name} gauge\n"
        f"{_line(name, {'node': address}, 0)}\n"
    )


def prometheus_refused(address: str, code: str) -> str:
    """The exposition for a node that answered the stats read with an error (``code``,
    e.g. PERMISSION_DENIED: the metrics key may not read stats): ``meshreg_up`` 1 (the
    node is up: review61 F7, a "node down" alert for every node was sent) and
    ``meshreg_stats_refused`` 1, labelled with the code."""
    up = PREFIX + _FAMILIES[0].name
    refused = PREFIX + "stats_refused"
    return (
        f"# HELP {up} {_FAMILIES[0].help}\n# TYPE {up} gauge\n"
        f"{_line(up, {'node': address}, 1)}\n"
        f"# HELP {refused} 1: the node answered but refused the stats read (the code says "
        f"why; PERMISSION_DENIED: give the metrics key stats = true in its ACL entry, "
        f"docs/SECURITY.md)\n"
        f"# TYPE {refused} gauge\n"
        f"{_line(refused, {'node': address, 'code': code}, 1)}\n"
    )
