"""What the user's threads ask the client's I/O thread for: typed commands.

``Client`` (any thread) builds one of these and queues it with ``ClientAgent.submit``;
the I/O thread hands it to ``ClientSession.handle``.  ``reply_to`` is the caller's
handle (a Future in the loop), completed through a ``Complete`` or ``Fail`` action;
the session never looks inside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meshreg.client.configs import ConfigInfo, ConfigListener
from meshreg.configcenter.model import ConfigKey
from meshreg.model import Instance, InstanceId, ServiceKey

Listener = Callable[[list[Instance]], None]
ReplyTo = Any  # the caller's handle (the loop's Future); opaque here


@dataclass
class Registration:
    """An instance this client keeps alive; ``fields`` is its register request."""

    key: ServiceKey
    iid: InstanceId
    fields: dict[str, Any]  # the register request's fields, to redo it
    beat_fields: dict[str, Any] = field(init=False)  # built once: beats are the hot path

    def __post_init__(self) -> None:
        names = ("namespace", "group", "service", "ip", "port", "cluster")
        self.beat_fields = {k: self.fields[k] for k in names}

    @property
    def session(self) -> str | None:
        return self.fields.get("session")  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Call:
    """Send ``op`` and complete ``reply_to`` with its typed result (messages.decode_result)."""

    op: str
    fields: dict[str, Any]
    timeout: float
    reply_to: ReplyTo


@dataclass(frozen=True)
class Register:
    registration: Registration
    timeout: float
    reply_to: ReplyTo


@dataclass(frozen=True)
class RegisterBatch:
    """Many registrations (``register_many``).  Each item's handle is completed on its
    own; or, with ``reply_to``, the items' handles are None and ``reply_to`` is completed
    once every item is done, with the list of ``(index, error)`` of those that failed."""

    items: tuple[tuple[Registration, ReplyTo], ...]
    timeout: float
    reply_to: ReplyTo = None


@dataclass(frozen=True)
class Deregister:
    key: ServiceKey
    iid: InstanceId
    fields: dict[str, Any]
    timeout: float
    reply_to: ReplyTo


@dataclass(frozen=True)
class NoteWrite:
    """This client wrote to ``key`` (update, service_set): read it from the server a while."""

    key: ServiceKey


@dataclass(frozen=True)
class Subscribe:
    """Watch ``key``; ``saved``: its disk copy, read by the loop when not watched yet."""

    key: ServiceKey
    listener: Listener | None
    timeout: float
    reply_to: ReplyTo
    pinned: bool = False  # kept without listeners (a service the client queried)
    saved: tuple[Instance, ...] | None = None
    saved_at: float | None = None  # when the disk copy was written (wall clock, s)


@dataclass(frozen=True)
class Unsubscribe:
    key: ServiceKey
    listener: Listener | None  # None: every listener
    reply_to: ReplyTo


@dataclass(frozen=True)
class ReadCached:
    """Completes with ("view", list), ("bypass", list) just after our own write, or
    ("none", None) when the service is not cached yet."""

    key: ServiceKey
    healthy_only: bool
    reply_to: ReplyTo


@dataclass(frozen=True)
class CloseSession:
    """The node deregisters every instance of the client session (one request)."""

    timeout: float
    reply_to: ReplyTo


@dataclass(frozen=True)
class ListRegistrations:
    """Completes with a tuple of (key, iid, id fields) of what is kept alive.
    ``closing``: the client's close asks: registrations are refused from now on, and the
    list waits (``wait`` s at most) for the registrations in flight to be answered, so
    that none lands after the close deregistered the rest (review55 F3)."""

    reply_to: ReplyTo
    closing: bool = False
    wait: float = 0.0


@dataclass(frozen=True)
class ForgetRegistrations:
    """Stop keeping every instance alive, without deregistering (tests: a silent provider)."""

    reply_to: ReplyTo


@dataclass(frozen=True)
class Settle:
    """The close's last wait (``wait`` s at most): until no register of this client is
    out, no deregister waits to go again after a register's copies, and none is
    unanswered (review72 F3).  Completes with the instances still unsettled then (they
    may stay registered until evicted)."""

    reply_to: ReplyTo
    wait: float = 0.0


@dataclass(frozen=True)
class Shutdown:
    reply_to: ReplyTo


@dataclass(frozen=True)
class ConfigCall:
    """A ``config_*`` request: reads carry the highest revision seen of ``key`` (and the
    client's labels), results raise it (client/config_session.py).  ``key`` None:
    config_list.  ``saved``: a ``config_get`` the caller can answer from its disk copy
    (it fails as soon as the client is offline, rather than at its time-out)."""

    op: str
    key: ConfigKey | None
    fields: dict[str, Any]
    timeout: float
    reply_to: ReplyTo
    saved: bool = False


@dataclass(frozen=True)
class ConfigListen:
    """Call ``listener(content, revision)`` now and on every change of ``key``;
    ``saved``: its disk copy, served when no node answers the first listen."""

    key: ConfigKey
    listener: ConfigListener
    timeout: float
    reply_to: ReplyTo
    saved: ConfigInfo | None = None


@dataclass(frozen=True)
class ConfigUnlisten:
    key: ConfigKey
    listener: ConfigListener | None  # None: every listener
    reply_to: ReplyTo


Command = (
    Call
    | Register
    | RegisterBatch
    | Deregister
    | NoteWrite
    | Subscribe
    | Unsubscribe
    | ReadCached
    | CloseSession
    | ListRegistrations
    | ForgetRegistrations
    | Settle
    | Shutdown
    | ConfigCall
    | ConfigListen
    | ConfigUnlisten
)
