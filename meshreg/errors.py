"""One error hierarchy for meshreg.

Every error a user can see derives from :class:`MeshregError`.  Errors that
travel on the wire carry a stable numeric :class:`ErrorCode`; the codes are
append-only (never renumber or reuse one) because clients in other languages
match on them.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.IntEnum):
    """Stable wire error codes (append-only)."""

    MALFORMED = 1  # bytes that are not a well-formed request (frames, msgpack)
    UNSUPPORTED_VERSION = 2  # protocol version this node does not speak
    UNKNOWN_OP = 3  # operation name not known to this node
    INVALID_ARGUMENT = 4  # a field is missing, of the wrong type or out of range
    TOO_LARGE = 5  # body or metadata above the documented limits
    NOT_FOUND = 6  # instance/service unknown (a beat for it means: register again)
    INTERNAL = 7  # a bug on the node; the request may be retried
    UNAVAILABLE = 8  # the node is shutting down or overloaded; retry elsewhere
    PERMISSION_DENIED = 9  # the client's key may not do this operation on this name (ACL)
    RESOURCE_EXHAUSTED = 10  # a quota or rate limit was reached; the reply names which
    CONFLICT = 11  # a compare-and-set saw another revision; the reply names the current one


class MeshregError(Exception):
    """Base class of every meshreg error.

    ``listener_kept``: a ``subscribe`` or ``config_listen`` that no node could answer yet
    (none reachable, or none ready) raised this, and its listener stays registered anyway
    (Nacos 2's redo): it is called once a node answers; ``unsubscribe`` /
    ``config_unlisten`` drops it.  False on every other error (nothing was kept).

    ``registration_kept``: a ``register`` no node could take yet (none reachable, none
    ready, or no answer) raised this, and the client keeps the registration and makes it
    once a node answers (Nacos 2's redo); ``deregister`` drops it."""

    listener_kept = False
    registration_kept = False


class ConfigError(MeshregError, ValueError):
    """A configuration file, option or argument is invalid (also a ValueError)."""


class ProtocolError(MeshregError):
    """A message broke the wire protocol; carries the wire code."""

    code: ErrorCode = ErrorCode.MALFORMED

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class LocalProtocolError(ProtocolError):
    """We were about to send something invalid (caught before it left)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent us something invalid (validation of untrusted input)."""


class RequestRejected(RemoteProtocolError):
    """A request failed validation or was refused; the node replies with ``code``."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        req_id: int = 0,
        op: str | None = None,
        reason: str = "",
        unwritten: bool = False,
        revision: int | None = None,
        retry_after: float | None = None,
        rate: int | None = None,
    ) -> None:
        super().__init__(message, code)
        self.req_id = req_id
        self.op = op
        self.reason = reason  # why, for a counter by reason ('': the code's name)
        self.unwritten = unwritten  # a config write refused before anything was written
        self.revision = revision  # a config read's NOT_FOUND of a delete: its revision
        self.retry_after = retry_after  # s: a rate limit's refusal, when to send it again
        self.rate = rate  # the write rate's refusal: the limit, writes per second


class ServerError(MeshregError):
    """A node answered a request with an error reply."""

    def __init__(
        self,
        code: int,
        message: str,
        server: str = "",
        unwritten: bool = False,
        revision: int | None = None,
    ) -> None:
        self.code = code
        self.server = server
        # a config write the node refused before writing anything (``error.written``
        # false): it may be sent again anywhere, with or without its request id
        self.unwritten = unwritten
        # a config_get's NOT_FOUND of a deleted data id: the delete's revision (a floor
        # for this client's later reads of it, ``error.revision``); a CAS's CONFLICT: the
        # current revision (``error.current``; 0: the data id does not exist)
        self.revision = revision
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = f"code {code}"
        self.code_name = name  # UNAVAILABLE, PERMISSION_DENIED, ... (or "code N")
        where = f" from {server}" if server else ""
        super().__init__(f"{name}{where}: {message}")
        self.detail = message


class NotFoundError(ServerError):
    """The node does not know the instance or service."""


class InvalidArgumentError(ServerError):
    """The node rejected an argument (see the message for which one)."""


class PermissionDeniedError(ServerError):
    """The node's ACL does not let this client's key do that (docs/SECURITY.md)."""


class ResourceExhaustedError(ServerError):
    """A quota or rate limit of the node was reached; the message names which."""


class ConflictError(ServerError):
    """A compare-and-set (``if_revision``) failed; ``revision`` is the current revision
    (0: the data id does not exist; None from a node older than 2026-12-05), also named in
    the message.  Read the data id, reconcile, and write again with that revision."""


class ServerUnreachableError(MeshregError):
    """No node in the server list answered in time.  ``unsent``: the request never left
    this client (no connection completed its handshake): a write was not applied;
    ``refused``: the server refused the handshake (its ACL, or the keys differ)."""

    unsent = False
    refused = False


class OutcomeUnknownError(ServerUnreachableError):
    """A write got no answer within its time-out: it may have been applied, or may still
    be.  A config write: re-send it with ``request_id`` (the message names it too): the
    cluster applies one request id at most once, and answers a re-send with the version it
    made.  A registry write (``request_id`` empty): send it again (registry writes are
    idempotent) or read the service; the message names each attempt and, when the write
    carried deadlines, how long it may still be applied (PROTOCOL.md 2.1, "Deadline")."""

    def __init__(self, message: str, request_id: str = "") -> None:
        super().__init__(message)
        self.request_id = request_id


class ClientClosedError(MeshregError):
    """The client was closed; create a new one."""


class NoInstanceAvailableError(MeshregError):
    """select()/call() found no healthy, enabled instance with weight above 0."""


class CallFailedError(MeshregError):
    """call() tried instances and every attempt failed; ``attempts`` lists them."""

    def __init__(self, message: str, attempts: list[tuple[str, BaseException]]) -> None:
        super().__init__(message)
        self.attempts = attempts


# errors a later attempt may cure: a first subscribe/listen that failed so keeps its listener
_RETRYABLE_CODES = (ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL, ErrorCode.RESOURCE_EXHAUSTED)


def with_listener_kept(exc: BaseException, how: str) -> BaseException:
    """``exc``, of a first subscribe or listen, as a new error that says (``how``, added to
    its message) that the listener stays, and is ``listener_kept``; ``exc`` itself when
    waiting cannot cure it (a bad name, the ACL, a refused handshake: the keys differ)."""
    new = _told_kept(exc, how, _RETRYABLE_CODES, unknown=False)
    if new is None:
        return exc
    new.listener_kept = True
    return new


def with_registration_kept(exc: BaseException, how: str) -> BaseException:
    """``exc``, of a ``register``, as a new error that says (``how``) that the client
    keeps the registration, ``registration_kept``; ``exc`` itself when waiting cannot cure
    it (a bad argument, the ACL, a quota, a refused handshake).  A register that may have
    been applied (no answer) is kept too: registering again is idempotent."""
    new = _told_kept(exc, how, (ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL), unknown=True)
    if new is None:
        return exc
    new.registration_kept = True
    return new


def _told_kept(
    exc: BaseException, how: str, codes: tuple[ErrorCode, ...], unknown: bool
) -> MeshregError | None:
    """A copy of ``exc`` whose message ends with ``how``; None if waiting cannot cure it
    (a code not in ``codes``, a refused handshake, an unknown outcome unless ``unknown``)."""
    if isinstance(exc, ServerError):
        if exc.code not in codes:
            return None
        return type(exc)(exc.code, f"{exc.detail}; {how}", exc.server, exc.unwritten, exc.revision)
    if isinstance(exc, OutcomeUnknownError):
        return OutcomeUnknownError(f"{exc}; {how}", exc.request_id) if unknown else None
    if isinstance(exc, ServerUnreachableError):
        if exc.refused:
            return None
        new = ServerUnreachableError(f"{exc}; {how}")
        new.unsent = exc.unsent
        return new
    return None


def server_error(
    code: int,
    message: str,
    server: str = "",
    unwritten: bool = False,
    revision: int | None = None,
    current: int | None = None,
) -> ServerError:
    """Build the most specific :class:`ServerError` subclass for a wire code (``current``:
    a CAS's CONFLICT, ``error.current``, its ``revision``)."""
    if code == ErrorCode.NOT_FOUND:
        return NotFoundError(code, message, server, revision=revision)
    if code in (ErrorCode.INVALID_ARGUMENT, ErrorCode.TOO_LARGE):
        return InvalidArgumentError(code, message, server)
    if code == ErrorCode.PERMISSION_DENIED:
        return PermissionDeniedError(code, message, server)
    if code == ErrorCode.RESOURCE_EXHAUSTED:
        return ResourceExhaustedError(code, message, server)
    if code == ErrorCode.CONFLICT:
        return ConflictError(code, message, server, revision=current)
    return ServerError(code, message, server, unwritten)
