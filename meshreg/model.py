"""The data model: namespace > group > service > instance (Nacos's shape).

An instance is identified inside its service by ``(ip, port, cluster)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import xxhash

from meshreg.errors import ErrorCode, InvalidArgumentError

DEFAULT_NAMESPACE = "public"
DEFAULT_GROUP = "DEFAULT_GROUP"
DEFAULT_CLUSTER = "DEFAULT"
# chars; the sum of an instance's (or a service's) metadata key and value lengths.
# Defined here, with the model, so the core can bound metadata without importing
# wire; wire/limits re-exports it with the other request limits.
MAX_METADATA_CHARS = 16 * 1024

_T = TypeVar("_T")

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform

    @dataclass_transform(frozen_default=True, field_specifiers=(field,))
    def hot_value(cls: type[_T]) -> type[_T]:
        """A frozen dataclass, to the type checker (see below)."""
        ...

else:

    def hot_value(cls):
        """A value made on a hot path (per instance of a change, per replicated record):
        a frozen dataclass to the type checker (mypy refuses an assignment to a field),
        a plain slotted dataclass at run time.  A frozen dataclass's ``__init__`` sets
        each field through ``object.__setattr__``: 3.5-4 us for an 11-field
        ``InstanceView`` against 0.4-1 us (CPython 3.11), and a health pass marking
        250,000 instances, or a node applying a flood of replicated records, makes one
        per record."""
        return dataclass(slots=True)(cls)


class ServiceKey(NamedTuple):
    """Where a service lives: (namespace, group, service)."""

    namespace: str
    group: str
    service: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.group}/{self.service}"


class InstanceId(NamedTuple):
    """An instance's identity inside its service."""

    ip: str
    port: int
    cluster: str

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}" + (
            "" if self.cluster == DEFAULT_CLUSTER else f"#{self.cluster}"
        )


@dataclass(frozen=True)
class Instance:
    """One provider instance as clients see it."""

    ip: str
    port: int
    cluster: str = DEFAULT_CLUSTER
    weight: float = 1.0
    enabled: bool = True
    healthy: bool = True
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """``host:port`` (IPv6 literals bracketed)."""
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port}"

    @property
    def id(self) -> InstanceId:
        return InstanceId(self.ip, self.port, self.cluster)

    def to_wire(self) -> dict[str, Any]:
        return {
            "ip": self.ip,
            "port": self.port,
            "cluster": self.cluster,
            "weight": self.weight,
            "enabled": self.enabled,
            "healthy": self.healthy,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Instance:
        return cls(
            ip=d["ip"],
            port=d["port"],
            cluster=d.get("cluster", DEFAULT_CLUSTER),
            weight=float(d.get("weight", 1.0)),
            enabled=bool(d.get("enabled", True)),
            healthy=bool(d.get("healthy", True)),
            metadata=dict(d.get("metadata") or {}),
        )


class InstanceList(list[Instance]):
    """A list of instances that also says which revision of the service it shows, and
    whether it comes from the client's disk cache (``from_cache``: no node has confirmed
    it since this process started; as ``ConfigInfo.from_cache``)."""

    def __init__(
        self,
        items: Any = (),
        revision: int = 0,
        epoch: int | None = None,
        protected: bool = False,
        service_metadata: dict[str, str] | None = None,
        from_cache: bool = False,
    ) -> None:
        super().__init__(items)
        self.revision = revision
        self.epoch = epoch
        self.protected = protected  # the protection threshold is in force: all are listed
        self.service_metadata = service_metadata or {}  # the service's own metadata
        self.from_cache = from_cache

    def copy(self) -> InstanceList:
        return InstanceList(
            self,
            self.revision,
            self.epoch,
            self.protected,
            dict(self.service_metadata),
            self.from_cache,
        )

    def where(
        self,
        clusters: str | Iterable[str] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> InstanceList:
        """The instances ``InstanceFilter.of(clusters, metadata)`` keeps, with the
        revision and flags of this list."""
        keep = InstanceFilter.of(clusters, metadata).matches
        return InstanceList(
            (i for i in self if keep(i)),
            self.revision,
            self.epoch,
            self.protected,
            dict(self.service_metadata),
            self.from_cache,
        )


def _bad_filter(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(int(ErrorCode.INVALID_ARGUMENT), message)


@dataclass(frozen=True)
class InstanceFilter:
    """What a read narrows a service's instances to: ``clusters`` (None: any) and
    ``pairs`` an instance's metadata must all hold (Nacos's ``selectInstances(service,
    clusters, ...)``, Consul's ``?filter=``).  One definition for the client's
    ``instances``/``select``/``call`` and the CLI."""

    clusters: frozenset[str] | None = None
    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(
        cls, clusters: str | Iterable[str] | None, metadata: Mapping[str, str] | None
    ) -> InstanceFilter:
        """``clusters``: one name (not its characters: review31 F5) or several; None or
        empty: any (as Nacos's; review31 F2).  A name must be a string: a stray int or
        bytes would match nothing, silently."""
        names = None
        if clusters is not None:
            if not isinstance(clusters, str | Iterable):
                raise _bad_filter(f"clusters: a name or several, not {clusters!r}")
            names = frozenset((clusters,) if isinstance(clusters, str) else clusters) or None
            for name in names or ():
                if not isinstance(name, str):
                    raise _bad_filter(
                        f"cluster names are strings, not {type(name).__name__}: {name!r}"
                    )
        if metadata is not None and not (
            isinstance(metadata, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
        ):  # (review55 F6: a str or a list of pairs escaped as an AttributeError)
            raise _bad_filter(f"metadata: a mapping of strings to strings, not {metadata!r}")
        return cls(names, tuple(sorted((metadata or {}).items())))

    def __bool__(self) -> bool:
        return self.clusters is not None or bool(self.pairs)

    def matches(self, inst: Instance) -> bool:
        return (self.clusters is None or inst.cluster in self.clusters) and all(
            inst.metadata.get(k) == v for k, v in self.pairs
        )

    def words(self, quote: bool = True) -> str:
        """`` in cluster 'a' with metadata zone=b``: what the filter narrows to."""
        text = ""
        if self.clusters is not None:
            names = ", ".join(repr(c) if quote else c for c in sorted(self.clusters))
            text = f" in cluster{'s' if len(self.clusters) > 1 else ''} {names}"
        if self.pairs:
            text += " with metadata " + ", ".join(f"{k}={v}" for k, v in self.pairs)
        return text


# A session's instance set as one number (docs/PROTOCOL.md 2.3b ``digest``): the sum,
# modulo 2**64, of ``session_member_hash`` over its instances.  A sum is order-free and
# kept incrementally (add an instance's hash as it enters, subtract it as it leaves).
SESSION_DIGEST_MOD = 1 << 64


def session_member_hash(group: str, service: str, ip: str, port: int, cluster: str) -> int:
    """One instance's share of its session's digest: xxh64 (seed 0) of the UTF-8 bytes of
    ``group NUL service NUL ip NUL port NUL cluster`` (the session fixes the namespace).
    Defined here, with the model, because node (core/sessions) and client
    (client/session) must agree on it bit for bit, and the client loads no node module."""
    text = f"{group}\x00{service}\x00{ip}\x00{port}\x00{cluster}"
    return int(xxhash.xxh64_intdigest(text.encode()))


def session_key_hash(key: ServiceKey, iid: InstanceId) -> int:
    """``session_member_hash`` of instance ``iid`` of service ``key``."""
    return session_member_hash(key.group, key.service, iid.ip, iid.port, iid.cluster)


def protection_active(healthy: int, total: int, threshold: float) -> bool:
    """Nacos's protection threshold: below this healthy share, serve every instance.

    When too few instances are healthy, sending all traffic to the survivors would
    overload them too; returning all instances (flagged healthy or not) spreads it.
    """
    return threshold > 0 and total > 0 and healthy / total < threshold
