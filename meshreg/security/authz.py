"""Authorization: may this principal make this request, or read this topic?

Theory of operation
-------------------
Every client operation has one row in :data:`OP_ACCESS`: the access level it
needs and what it is scoped by.  An operation without a row (a peer operation
or one added later without its row) needs :attr:`Access.PEER`, which only
cluster nodes hold: a new operation is closed until someone decides who may
use it (``tests/security`` fails while an op in ``wire.messages.OPS`` has no
row).

===========  ======  =========================================================
op           access  scope
===========  ======  =========================================================
instances    read    the service
revisions    read    the namespace: allowed if the client may read some service
                     there; an entry it may not read is answered stale (its pull
                     is then refused on its own)
services     read    the namespace (and group): allowed if the client may read
                     some service there; the listing is then filtered to what
                     it may read (:func:`visible_services`)
register     write   the service
register_batch write the namespace (write on some service there), then each
                     entry on its own service: an entry denied gets its own
                     PERMISSION_DENIED result (:func:`authorize_entries`)
beat         write   the service
deregister   write   the service
update       admin   the service (instance-set: drain, weight)
service_set  admin   the service (protection threshold, service metadata)
namespaces   none    any authenticated principal; the listing names only the
                     namespaces where it may read some service or data id
stats        read    every namespace: node-wide figures, so only a client that
                     may read everything (namespace, group and service "*"), or
                     one whose ACL entry says ``stats = true`` (a monitoring key:
                     the figures name no namespace, service or data id and carry
                     no content, so it needs no read access to any of them)
ping         none    any authenticated principal
cluster      none    any authenticated principal (clients need the member list)
session_*    write   the namespace: write on some service of the request's namespace
                     (session_open, session_renew, session_close).  The session
                     id is the capability: 128 random bits only its client knows,
                     and a session holds instances of its own namespace only,
                     registered by a client with write on each service; so close
                     (which deregisters them all) reaches only what someone with
                     the id and write access in that namespace registered
digests      peer    cluster nodes only
reconcile    peer    cluster nodes only
config_get, config_list, config_history, config_listen, config_unlisten
             read    the config group: every data id of the request's namespace
                     and group (config_list without a group: of every group), as
                     a rule whose service pattern is ``*`` grants it (data ids
                     are not services; the rule's namespace and group patterns
                     select them)
config_publish
             write   the config group, as above
config_delete, config_rollback, config_gray, config_promote, config_gray_drop
             admin   the config group, as above (they undo or redirect what
                     others published)
config_force_ready
             admin   every namespace (namespace, group and service "*"): it makes
                     the node serve every config without a majority's catch-up
(other)      peer    cluster nodes only, until the op gets a row here
===========  ======  =========================================================

Config notification topics (``NUL config NUL ns NUL [group NUL [data_id NUL]]``) need
read on the config group (a namespace prefix: on every group of it).

What a check looks at is the principal and the request, never the registry:
so a denial reveals nothing about what exists, and authorization must run
before the core sees the request (a NOT_FOUND for a service in a namespace
the client may not touch would tell it the service is not there).  Denial
messages name the client, the operation, the request's own names and the
access it lacks, nothing else.

Pure: no zmq, no sockets, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from meshreg.errors import ErrorCode
from meshreg.security.acl import (
    ALL,
    MAX_GROUP_LEN,
    MAX_NAMESPACE_LEN,
    MAX_SERVICE_LEN,
    NAME_RE,
    Access,
    Principal,
)
from meshreg.wire.config_replies import parse_config_topic
from meshreg.wire.messages import EntryRejected, RegisterBatch, RegisterInstance, RequestRejected
from meshreg.wire.notifications import SEP

# op -> (access, scope).  Scopes: "service" (req.key), "listing" (req.namespace, req.group),
# "everything" (node-wide), "none" (not about names).  Ops missing here need Access.PEER.
OP_ACCESS: Mapping[str, tuple[Access, str]] = {
    "instances": (Access.READ, "service"),
    "revisions": (Access.READ, "listing"),
    "services": (Access.READ, "listing"),
    "namespaces": (Access.NONE, "none"),
    "register": (Access.WRITE, "service"),
    "register_batch": (Access.WRITE, "namespace"),
    "beat": (Access.WRITE, "service"),
    "deregister": (Access.WRITE, "service"),
    "update": (Access.ADMIN, "service"),
    "service_set": (Access.ADMIN, "service"),
    "stats": (Access.READ, "everything"),
    "ping": (Access.NONE, "none"),
    "cluster": (Access.NONE, "none"),
    "session_open": (Access.WRITE, "namespace"),
    "session_renew": (Access.WRITE, "namespace"),
    "session_close": (Access.WRITE, "namespace"),
    "digests": (Access.PEER, "none"),
    "reconcile": (Access.PEER, "none"),
    "sessions": (Access.PEER, "none"),
    "join": (Access.PEER, "none"),
    "beacon": (Access.PEER, "none"),
    "config_get": (Access.READ, "config"),
    "config_list": (Access.READ, "config"),
    "config_history": (Access.READ, "config"),
    "config_listen": (Access.READ, "config"),
    "config_unlisten": (Access.READ, "config"),
    "config_publish": (Access.WRITE, "config"),
    "config_delete": (Access.ADMIN, "config"),
    "config_rollback": (Access.ADMIN, "config"),
    "config_gray": (Access.ADMIN, "config"),
    "config_promote": (Access.ADMIN, "config"),
    "config_gray_drop": (Access.ADMIN, "config"),
    "config_force_ready": (Access.ADMIN, "everything"),
}

# What the denial says the client tried ("may not <verb> <ns/group/service>").
_VERBS = {
    "instances": "query instances of",
    "register": "register in",
    "beat": "beat in",
    "deregister": "deregister from",
    "update": "change instances (instance-set) of",
    "service_set": "change the settings (service-set) of",
    "config_get": "read the configs of",
    "config_list": "list the configs of",
    "config_history": "read the config history of",
    "config_listen": "listen to the configs of",
    "config_unlisten": "listen to the configs of",
    "config_publish": "publish configs in",
    "config_delete": "delete configs of",
    "config_rollback": "roll back configs of",
    "config_gray": "publish gray configs in",
    "config_promote": "promote gray configs of",
    "config_gray_drop": "drop gray configs of",
}


def required_access(req: Any) -> tuple[Access, str | None, str | None, str | None]:
    """(access, namespace, group, service) a parsed client request needs; None parts = not
    scoped by that name.

    * ``(NONE, None, None, None)``: any authenticated principal (ping, cluster).
    * ``(PEER, None, None, None)``: cluster nodes only (peer ops, ops without a row).
    * ``(a, ns, g, s)``: ``a`` on that one service.
    * ``(READ, ns, g or None, None)``: a listing: read on some service of ns (of group g).
    * ``(READ, "*", "*", "*")``: read on every service of every namespace (stats).
    """
    op = getattr(req, "op", None)
    entry = OP_ACCESS.get(op) if isinstance(op, str) else None
    if entry is None:
        return Access.PEER, None, None, None
    access, scope = entry
    if scope == "service":
        key = req.key
        return access, key.namespace, key.group, key.service
    if scope == "listing":  # (``revisions`` names no group: the namespace's)
        return access, req.namespace, getattr(req, "group", None), None
    if scope == "namespace":
        return access, req.namespace, None, None
    if scope == "everything":
        return access, ALL, ALL, ALL
    if scope == "config":  # every data id of the group (ALL: of every group, for a list)
        key = getattr(req, "key", None)
        if key is not None:
            return access, key.namespace, key.group, ALL
        return access, req.namespace, req.group or ALL, ALL
    return access, None, None, None


def permits(
    principal: Principal,
    access: Access,
    namespace: str | None,
    group: str | None,
    service: str | None,
) -> bool:
    """Whether ``principal`` holds what :func:`required_access` returned."""
    if principal.is_node or principal.unrestricted or access <= Access.NONE:
        return True
    if access >= Access.PEER or namespace is None:
        return False
    if namespace == ALL:
        return principal.may_all(access, ALL)
    if service == ALL:  # a config scope: every data id of the group (or of every group)
        return principal.may_all(access, namespace, group)
    if service is None:
        return principal.may_some(access, namespace, group)
    if group is None:  # pragma: no cover - no request has a service without a group
        return False
    return principal.may(access, namespace, group, service)


def authorize(principal: Principal, req: Any) -> None:
    """Raises RequestRejected(ErrorCode.PERMISSION_DENIED, msg, req.req_id) unless the
    principal may make this request; msg names the client, the operation, the names and
    the access it needs."""
    access, namespace, group, service = required_access(req)
    if permits(principal, access, namespace, group, service):
        return
    op = getattr(req, "op", None)
    if op == "stats" and principal.stats:  # a monitoring key (module docstring)
        return
    raise RequestRejected(
        ErrorCode.PERMISSION_DENIED,
        denial_message(principal, op, access, namespace, group, service),
        getattr(req, "req_id", 0),
        op if isinstance(op, str) else None,
    )


def authorize_entries(principal: Principal, batch: Any) -> Any:
    """A ``register_batch`` (``authorize`` passed it for its namespace) with every entry
    the principal may not register replaced by its PERMISSION_DENIED result."""
    if principal.is_node or principal.unrestricted:
        return batch
    entries = []
    for entry in batch.entries:
        if type(entry) is RegisterInstance:
            k = entry.key
            if not principal.may(Access.WRITE, k.namespace, k.group, k.service):
                why = denial_message(principal, "register", Access.WRITE, *k)
                entry = EntryRejected(ErrorCode.PERMISSION_DENIED, why)
        entries.append(entry)
    return RegisterBatch(batch.req_id, batch.namespace, tuple(entries))


def _show(name: str | None) -> str:
    """A name as it may appear in a message: as is if it is a valid name, else quoted."""
    if name is None:
        return "?"
    if NAME_RE.match(name) and len(name) <= MAX_SERVICE_LEN:
        return name
    return repr(name[:64])  # a beat's names are checked by length only: no raw escapes


def denial_message(
    principal: Principal,
    op: Any,
    access: Access,
    namespace: str | None,
    group: str | None,
    service: str | None,
) -> str:
    """The PERMISSION_DENIED message (names only what the request itself named)."""
    who = f"client {principal.name!r}"
    fix = "ask the operator to extend its ACL entry"
    op_text = repr(op[:32]) if isinstance(op, str) else "this operation"
    if access >= Access.PEER:
        if isinstance(op, str) and op in OP_ACCESS:
            return (
                f"{who} may not use {op_text}: it is a peer operation, accepted only from "
                "cluster nodes (the cluster key)"
            )
        return (
            f"{who} may not use {op_text}: this node has no access rule for it, so only "
            "cluster nodes may use it"
        )
    level = access.name.lower()
    if namespace == ALL and op == "config_force_ready":
        return (
            f"{who} may not force this node's configs ready (config_force_ready): it makes "
            "the node serve every config without catching up, so it needs admin access to "
            'every namespace (namespace = "*", group = "*", service = "*"); ' + fix
        )
    if namespace == ALL:
        return (
            f"{who} may not read node stats: they cover every namespace, so it needs "
            "stats = true in its ACL entry (node-wide figures only: no names, no contents) "
            'or read access to everything (namespace = "*", group = "*", service = "*"); ' + fix
        )
    if service is None and isinstance(op, str) and op.startswith("session_"):
        return (
            f"{who} may not use sessions ({op_text}) in namespace {_show(namespace)}: needs "
            f"write access to some service there; {fix}"
        )
    if service is None:
        where = _show(namespace) + ("" if group is None else f"/{_show(group)}")
        what = "list services" if op == "services" else f"use {op_text}"  # register_batch
        return f"{who} may not {what} in {where}: needs {level} access to some service there; {fix}"
    verb = _VERBS.get(op, f"use {op_text} on") if isinstance(op, str) else "act on"
    if service == ALL:
        where = _show(namespace) if group == ALL else f"{_show(namespace)}/{_show(group)}"
        return (
            f"{who} may not {verb} {where}: needs {level} access to every name there "
            f'(a rule with service = "*"); {fix}'
        )
    return (
        f"{who} may not {verb} {_show(namespace)}/{_show(group)}/{_show(service)}: "
        f"needs {level} access; {fix}"
    )


def _topic_names(topic: bytes) -> list[str] | None:
    """The 1..3 names of a well-formed subscription topic (each NUL-terminated), or None."""
    parts = topic.split(SEP)
    if not 2 <= len(parts) <= 4 or parts[-1] != b"":
        return None
    names = []
    for raw, max_len in zip(
        parts[:-1], (MAX_NAMESPACE_LEN, MAX_GROUP_LEN, MAX_SERVICE_LEN), strict=False
    ):
        try:
            name = raw.decode("ascii")
        except UnicodeDecodeError:
            return None
        if not 0 < len(name) <= max_len or NAME_RE.match(name) is None:
            return None
        names.append(name)
    return names


def authorize_topic(principal: Principal, topic: bytes) -> bool:
    """A notification subscription topic: may the principal read everything it delivers?

    PUB/SUB matches by prefix, so a topic is judged by everything it would
    deliver: a full service topic ``ns\\0group\\0service\\0`` needs read on
    that service; ``ns\\0`` (a namespace) and ``ns\\0group\\0`` (a group) need
    read on every service under them.  Anything else (the empty topic =
    everything, a prefix that is not NUL-terminated such as ``pub``, names
    outside the registry's alphabet) is denied unless the principal may read
    everything (NODE/OPEN).
    """
    if principal.is_node or principal.unrestricted:
        return True
    config = parse_config_topic(topic)
    if config is not None:  # read on the config group (a namespace prefix: every group)
        return principal.may_all(Access.READ, config[0], config[1] if len(config) > 1 else None)
    names = _topic_names(topic)
    if names is None:
        return False
    if len(names) == 3:
        return principal.may(Access.READ, names[0], names[1], names[2])
    return principal.may_all(Access.READ, names[0], names[1] if len(names) == 2 else None)


def visible_services(
    principal: Principal, namespace: str, group: str | None, names: Iterable[Any]
) -> list[Any]:
    """Filter a ``services`` listing to names the principal may read.

    Items may be ``(group, service)`` pairs (as the store lists them), maps
    with ``"group"`` and ``"service"`` (as the reply carries them), or plain
    service names (of ``group``, which must then be given).  They come back
    unchanged, in order.
    """
    if principal.may_all(Access.READ, namespace, group):
        return list(names)
    visible = []
    for item in names:
        item_group: Any
        service: Any
        if isinstance(item, str):
            item_group, service = group, item
        elif isinstance(item, Mapping):
            item_group, service = item.get("group"), item.get("service")
        else:
            item_group, service = item
        if (
            isinstance(item_group, str)
            and isinstance(service, str)
            and principal.may(Access.READ, namespace, item_group, service)
        ):
            visible.append(item)
    return visible
