"""Access control lists: who (a client key) may do what (access) where (names).

Theory of operation
-------------------
Once a node has a key, every connection authenticates with a CURVE key, and
the key decides the *principal*: the cluster key is :data:`NODE` (a peer: may
do everything, peer operations included); a key listed in the ACL file is
that client; any other key gets in nowhere (default deny).  A node without a
key (``--insecure``) treats everyone as :data:`OPEN`.

A client's rights are a union of *allow* rules, each a triple of glob
patterns (``*`` any run of characters, ``?`` one; ``fnmatch.fnmatchcase``,
matched against one whole name, never across the namespace/group/service
boundary) and an access level.  Levels nest: ``admin`` ⊇ ``write`` ⊇
``read``.  There are no deny rules, so the order of rules does not matter and
adding a rule can only widen what a client may do.

Two levels exist beyond the file's three: :attr:`Access.NONE` (what ``ping``
and ``cluster`` need: any authenticated principal) and :attr:`Access.PEER`
(peer operations and operations without an access rule: no ACL rule can grant
it, only :data:`NODE` and :data:`OPEN` hold it).

The ACL file (TOML)::

    [[client]]
    name = "orders-app"
    key = "<z85 public key>"          # or key_file = "orders-app.pub" (relative to this file)
    # keys = [...] / key_files = [...]: several keys, to rotate one without downtime
    allow = [
      { namespace = "public", group = "*", service = "orders*", access = "write" },
      { namespace = "public", group = "*", service = "*",       access = "read" },
    ]

``group`` and ``service`` default to ``"*"``; ``namespace`` and ``access``
must be given.  Every mistake (unknown field, duplicate name or key, bad
pattern or level, missing key) is a ConfigError naming the file, the entry
and the field; a node refuses to start with it, and a reload (SIGHUP) keeps
the old ACL.

Pure: no zmq, no sockets, no clock.
"""

from __future__ import annotations

import enum
import fnmatch
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshreg.errors import ConfigError
from meshreg.security.keys import load_public_key, z85_public, z85_to_raw

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# The registry's name alphabet (meshreg.wire.messages._NAME_RE; a test keeps them equal)
# and its maximum lengths (meshreg.wire.limits).
NAME_RE = re.compile(r"[0-9A-Za-z@.:_\-]+\Z")
_PATTERN_RE = re.compile(r"[0-9A-Za-z@.:_\-*?]+\Z")  # names plus the two wildcards
MAX_NAMESPACE_LEN = 64  # chars, as limits.MAX_NAMESPACE_LEN
MAX_GROUP_LEN = 128  # chars, as limits.MAX_GROUP_LEN
MAX_SERVICE_LEN = 256  # chars, as limits.MAX_SERVICE_LEN
MAX_CLIENT_NAME_LEN = 128  # chars; client names appear in logs and error messages

ALL = "*"  # as a name given to may_all: every namespace / every group
# Answers of Principal.may remembered per principal: a client's working set of services is
# small; the bound keeps a client that cycles through names from growing it (~0.5 MB at most).
MAX_REMEMBERED = 1024


class Access(enum.IntEnum):
    """Access levels; a higher level includes every lower one."""

    NONE = 0  # nothing beyond being authenticated (ping, cluster); needs no rule
    READ = 1  # instances, services, subscribe (config get/listen)
    WRITE = 2  # register, beat, deregister (config publish)
    ADMIN = 3  # update (instance-set), service_set (config delete/rollback/gray)
    PEER = 4  # peer operations, and ops with no access rule: cluster nodes only; no rule grants it


# Levels an ACL file may grant.
GRANTABLE = {"read": Access.READ, "write": Access.WRITE, "admin": Access.ADMIN}

Matcher = Callable[[str], object]  # truthy if the name matches


def _everything(_name: str) -> bool:
    return True


def covers_everything(pattern: str) -> bool:
    """True if ``pattern`` matches every name (it is made of ``*`` only)."""
    return bool(pattern) and pattern.strip("*") == ""


def _matcher(pattern: str) -> Matcher:
    if covers_everything(pattern):
        return _everything
    if "*" not in pattern and "?" not in pattern:
        return pattern.__eq__  # a plain name: no regex on the hot path
    return re.compile(fnmatch.translate(pattern)).match  # translate anchors at the end


def pattern_problem(pattern: Any, max_len: int) -> str | None:
    """Why ``pattern`` is not a name pattern, or None if it is one."""
    if not isinstance(pattern, str):
        return f"must be a string, got {type(pattern).__name__}"
    if not 0 < len(pattern) <= max_len:
        return f"must be 1..{max_len} characters"
    if _PATTERN_RE.match(pattern) is None:
        return (
            f"{pattern[:64]!r} may only contain letters, digits, @.:_- "
            "and the wildcards * (any run) and ? (one character)"
        )
    return None


@dataclass(frozen=True)
class Rule:
    """One allow rule: ``access`` on every service whose three names match the patterns."""

    namespace: str
    group: str
    service: str
    access: Access
    _match_namespace: Matcher = field(init=False, repr=False, compare=False)
    _match_group: Matcher = field(init=False, repr=False, compare=False)
    _match_service: Matcher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, max_len in (
            ("namespace", MAX_NAMESPACE_LEN),
            ("group", MAX_GROUP_LEN),
            ("service", MAX_SERVICE_LEN),
        ):
            problem = pattern_problem(getattr(self, name), max_len)
            if problem is not None:
                raise ConfigError(f"rule field '{name}' {problem}")
        if not isinstance(self.access, Access) or self.access not in GRANTABLE.values():
            raise ConfigError(f"rule access must be read, write or admin, got {self.access!r}")
        object.__setattr__(self, "_match_namespace", _matcher(self.namespace))
        object.__setattr__(self, "_match_group", _matcher(self.group))
        object.__setattr__(self, "_match_service", _matcher(self.service))

    def matches(self, namespace: str, group: str, service: str) -> bool:
        """True if this rule's patterns match the three (whole) names."""
        return bool(
            self._match_namespace(namespace)
            and self._match_group(group)
            and self._match_service(service)
        )


@dataclass(frozen=True)
class Principal:
    """Who a request comes from, and what it may do."""

    name: str
    rules: tuple[Rule, ...]
    is_node: bool = False  # a cluster node: may do everything, including peer operations
    unrestricted: bool = False  # may do everything (OPEN: a node without a key), not a node
    stats: bool = False  # may read node stats without reading anything (``stats = true``)

    _answers: dict[tuple[Access, str, str, str], bool] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def may(self, access: Access, namespace: str, group: str, service: str) -> bool:
        """May this principal do ``access`` on this one service?

        The per-request check (a beat's too): answers are remembered, up to
        MAX_REMEMBERED per principal (then forgotten all at once), since a
        client mostly repeats the same few services.
        """
        if self.is_node or self.unrestricted or access <= Access.NONE:
            return True
        key = (access, namespace, group, service)
        answer = self._answers.get(key)
        if answer is None:
            answer = False
            for rule in self.rules:
                if rule.access >= access and rule.matches(namespace, group, service):
                    answer = True
                    break
            if len(self._answers) >= MAX_REMEMBERED:
                self._answers.clear()
            self._answers[key] = answer
        return answer

    def may_all(self, access: Access, namespace: str, group: str | None = None) -> bool:
        """True if some rule grants ``access`` to every service of the namespace (group None:
        of every group) — used for namespace-wide subscriptions and stats.

        ``namespace`` (or ``group``) ``"*"`` means every namespace (every group):
        then the rule's pattern must itself match everything.
        """
        if self.is_node or self.unrestricted or access <= Access.NONE:
            return True
        for rule in self.rules:
            if rule.access < access or not covers_everything(rule.service):
                continue
            if group is None or group == ALL:
                if not covers_everything(rule.group):
                    continue
            elif not rule._match_group(group):
                continue
            if namespace == ALL:
                if covers_everything(rule.namespace):
                    return True
            elif rule._match_namespace(namespace):
                return True
        return False

    def may_some(self, access: Access, namespace: str, group: str | None = None) -> bool:
        """True if some rule grants ``access`` to at least one service name of the namespace
        (of that group) — whether a ``services`` listing is worth filtering at all."""
        if self.is_node or self.unrestricted or access <= Access.NONE:
            return True
        return any(
            rule.access >= access
            and rule._match_namespace(namespace)
            and (group is None or rule._match_group(group))
            for rule in self.rules
        )


NODE = Principal("node", (), is_node=True)
# A node without a key cannot tell a peer from a client (that is what --insecure means), so
# OPEN passes every check, peer operations included; it is not is_node for code that asks
# whether a sender proved it is a cluster node.
OPEN = Principal("open", (), unrestricted=True)


class Acl:
    """The clients a node knows: each a principal and the public keys that act as it."""

    def __init__(
        self,
        clients: tuple[Principal, ...] = (),
        keys: Mapping[bytes, Principal] | None = None,
        source: str = "<acl>",
    ) -> None:
        self.clients = clients
        self.source = source
        self._by_key: dict[bytes, Principal] = dict(keys or {})  # 32 raw bytes -> principal
        self._by_name = {p.name: p for p in clients}

    def __repr__(self) -> str:
        return f"Acl({self.source!r}, {len(self.clients)} clients, {len(self._by_key)} keys)"

    @property
    def summary(self) -> str:
        """One line for the log at load and reload."""
        return (
            f"ACL {self.source}: {len(self.clients)} client(s), {len(self._by_key)} key(s); "
            "any other client key is denied"
        )

    @classmethod
    def empty(cls) -> Acl:
        """Default deny: no clients (only the cluster key gets in)."""
        return cls((), {}, "<empty acl>")

    def same_as(self, other: Acl) -> bool:
        """The same clients, with the same keys and rights (a reload that changes nothing)."""
        return self.clients == other.clients and self._by_key == other._by_key

    def by_key(self, public_key: bytes) -> Principal | None:
        """The client a key (32 raw bytes, as a ZAP request carries it) acts as; None if none."""
        return self._by_key.get(public_key)

    def by_name(self, name: str) -> Principal | None:
        return self._by_name.get(name)

    def raw_keys(self, name: str) -> list[bytes]:
        """The keys (raw) of one client, in no particular order."""
        return [k for k, p in self._by_key.items() if p.name == name]

    def refuse_key(self, public_key: bytes, what: str = "the cluster key") -> None:
        """ConfigError if a client holds ``public_key`` (32 raw bytes), e.g. the cluster key:
        that client would be taken for a node, and its entry would mean nothing."""
        principal = self.by_key(public_key)
        if principal is not None:
            raise ConfigError(
                f"{self.source}: client {principal.name!r} has {what} as its key; a client "
                f"needs a key of its own (meshreg keygen {principal.name})"
            )

    @classmethod
    def load(cls, path: str | Path) -> Acl:
        """Read an ACL file (TOML); ConfigError naming file, entry and field."""
        path = Path(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(
                f"cannot read ACL file {path}: {exc.strerror}; check the --acl path "
                "(or [security] acl in the node's config file)"
            ) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"ACL file {path} is not valid TOML: {exc}") from None
        return cls.from_dict(data, str(path), path.parent)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], source: str = "<acl>", base_dir: Path | None = None
    ) -> Acl:
        """Build an ACL from parsed TOML; key files are relative to ``base_dir``."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: an ACL must be a table of [[client]] entries")
        unknown = sorted(set(data) - {"client"})
        if unknown:
            raise ConfigError(
                f"{source}: unknown top-level key {unknown[0]!r}; an ACL file holds only "
                "[[client]] entries"
            )
        entries = data.get("client", [])
        if isinstance(entries, dict):
            raise ConfigError(
                f"{source}: 'client' must be an array of tables: write [[client]], not [client]"
            )
        if not isinstance(entries, list):
            raise ConfigError(f"{source}: 'client' must be an array of tables ([[client]])")
        clients: list[Principal] = []
        by_key: dict[bytes, Principal] = {}
        owners: dict[bytes, str] = {}
        names: set[str] = set()
        for index, entry in enumerate(entries, 1):
            principal, keys = _parse_client(entry, index, source, base_dir)
            if principal.name in names:
                raise ConfigError(
                    f"{source}: client {principal.name!r} (entry {index}): field 'name': "
                    "another entry has the same name; every client needs its own"
                )
            names.add(principal.name)
            for raw, field_name in keys:
                owner = owners.get(raw)
                if owner is not None:
                    raise ConfigError(
                        f"{source}: client {principal.name!r} (entry {index}): field "
                        f"{field_name!r}: this key also belongs to client {owner!r}; "
                        "every key acts as exactly one client"
                    )
                owners[raw] = principal.name
                by_key[raw] = principal
            clients.append(principal)
        return cls(tuple(clients), by_key, source)


_CLIENT_FIELDS = ("name", "key", "keys", "key_file", "key_files", "allow", "stats")
# names of the principals that are not ACL clients (NODE, OPEN): a client named so would
# be counted with them (a client's share of the reply budget, review65) and read as them
RESERVED_NAMES = {"node": "its peers (the cluster key)", "open": "clients of a node without a key"}
_RULE_FIELDS = ("namespace", "group", "service", "access")


def _parse_client(
    entry: Any, index: int, source: str, base_dir: Path | None
) -> tuple[Principal, list[tuple[bytes, str]]]:
    where = f"{source}: client entry {index}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table ([[client]] with name, key, allow)")
    name = entry.get("name")
    if name is None:
        raise ConfigError(f"{where}: field 'name' is missing; give each client a name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: field 'name' must be a non-empty string")
    if len(name) > MAX_CLIENT_NAME_LEN or NAME_RE.match(name) is None:
        raise ConfigError(
            f"{where}: field 'name' must be 1..{MAX_CLIENT_NAME_LEN} letters, digits or @.:_-"
        )
    if name in RESERVED_NAMES:
        raise ConfigError(
            f"{where}: field 'name': {name!r} is what the node calls "
            f"{RESERVED_NAMES[name]} in its logs and counts; give the client another name"
        )
    where = f"{source}: client {name!r} (entry {index})"
    unknown = [k for k in entry if k not in _CLIENT_FIELDS]
    if unknown:
        raise ConfigError(
            f"{where}: unknown field {unknown[0]!r}; a client has {', '.join(_CLIENT_FIELDS)}"
        )

    keys: list[tuple[bytes, str]] = []

    def add(raw: bytes, field_name: str) -> None:
        if any(raw == k for k, _ in keys):
            raise ConfigError(f"{where}: field {field_name!r}: the same key is listed twice")
        keys.append((raw, field_name))

    for field_name, many in (("key", False), ("keys", True)):
        for value in _values(entry, field_name, many, where):
            try:
                add(z85_to_raw(z85_public(value)), field_name)
            except ConfigError as exc:
                raise ConfigError(f"{where}: field {field_name!r}: {exc}") from None
    for field_name, many in (("key_file", False), ("key_files", True)):
        for value in _values(entry, field_name, many, where):
            path = Path(value)
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            try:
                add(z85_to_raw(load_public_key(path)), field_name)
            except ConfigError as exc:
                raise ConfigError(f"{where}: field {field_name!r}: {exc}") from None
    if not keys:
        raise ConfigError(
            f'{where}: no key: give key = "<public key>" or key_file = "{name}.pub" '
            f"(from `meshreg keygen {name}`)"
        )

    if "allow" not in entry:
        raise ConfigError(
            f"{where}: field 'allow' is missing: list what the client may do, e.g. "
            'allow = [{ namespace = "public", service = "*", access = "read" }] '
            "(allow = [] for a key that may only ping)"
        )
    allow = entry["allow"]
    if not isinstance(allow, list):
        raise ConfigError(f"{where}: field 'allow' must be a list of {{...}} rules")
    rules = tuple(_parse_rule(rule, f"{where}: allow[{i}]") for i, rule in enumerate(allow))
    stats = entry.get("stats", False)
    if type(stats) is not bool:
        raise ConfigError(
            f"{where}: field 'stats' must be true or false (true: may read node stats, "
            "node-wide figures with no names and no contents, without read access)"
        )
    return Principal(name, rules, stats=stats), keys


def _values(entry: dict[str, Any], field_name: str, many: bool, where: str) -> list[str]:
    if field_name not in entry:
        return []
    value = entry[field_name]
    if many:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: field {field_name!r} must be a list of strings")
        return list(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: field {field_name!r} must be a string")
    return [value]


def _parse_rule(rule: Any, where: str) -> Rule:
    if not isinstance(rule, dict):
        raise ConfigError(
            f"{where}: must be a table such as "
            '{ namespace = "public", group = "*", service = "*", access = "read" }'
        )
    unknown = [k for k in rule if k not in _RULE_FIELDS]
    if unknown:
        raise ConfigError(
            f"{where}: unknown field {unknown[0]!r}; a rule has {', '.join(_RULE_FIELDS)}"
        )
    values = {"group": ALL, "service": ALL, **rule}
    for name, max_len in (
        ("namespace", MAX_NAMESPACE_LEN),
        ("group", MAX_GROUP_LEN),
        ("service", MAX_SERVICE_LEN),
    ):
        if name not in values:
            raise ConfigError(
                f"{where}: field '{name}' is missing; name the namespace (\"*\" for every one)"
            )
        problem = pattern_problem(values[name], max_len)
        if problem is not None:
            raise ConfigError(f"{where}: field '{name}' {problem}")
    level = values.get("access")
    if level is None:
        raise ConfigError(f"{where}: field 'access' is missing; use read, write or admin")
    if not isinstance(level, str) or level not in GRANTABLE:
        shown = repr(level[:32]) if isinstance(level, str) else type(level).__name__
        raise ConfigError(
            f"{where}: field 'access': {shown} is not an access level; use read, write or "
            "admin (each includes the ones before it)"
        )
    return Rule(values["namespace"], values["group"], values["service"], GRANTABLE[level])
