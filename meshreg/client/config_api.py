"""The configuration center's methods of :class:`meshreg.client.Client` (a mixin).

Each method checks its arguments with the node's own rules (wire/config_messages)
before anything leaves, queues a command for the I/O thread and waits for its typed
answer (client/configs.py) within the client's ``timeout``.  The policies (the highest
revision seen per data id, listening, resync, the disk copy) are the sans-IO
session's: client/config_session.py.  docs/CONFIG.md, "Client and CLI".
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import queue
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from meshreg.client.commands import ConfigCall, ConfigListen, ConfigUnlisten
from meshreg.client.config_session import CONFIG_WRITES
from meshreg.client.config_session import key_fields as _key_fields
from meshreg.client.configs import ConfigInfo, ConfigListener, ConfigPage
from meshreg.client.listeners import ListenerTable
from meshreg.configcenter.model import HARD_MAX_CONTENT_BYTES, ConfigKey, content_md5
from meshreg.errors import (
    ConfigError,
    ErrorCode,
    InvalidArgumentError,
    MeshregError,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RequestRejected,
    ServerError,
    ServerUnreachableError,
)
from meshreg.wire.bodies import _bad_text
from meshreg.wire.config_messages import parse_config_request
from meshreg.wire.replies import encode_request

if TYPE_CHECKING:
    from meshreg.client.agent import ClientAgent
    from meshreg.client.disk_cache import DiskCache

log = logging.getLogger("meshreg.client")

MAX_LIST_ITEMS = 1_000_000  # data ids config_list follows pages for at most
DISK_SETTLE = 1.0  # s a read served from disk waits at most for its data id's save pending
_MISSING: Any = object()


def _check_callable(op: str, callback: Any, args: tuple[str, ...] = ()) -> None:
    """A callback that cannot be called, or not with ``args`` (their names, for the
    message), is refused at once: it was taken, and its TypeError only logged at every
    change (review55 F6; a new user's ``subscribe(svc, lambda: ...)``, 2026-12-07).  A
    callable whose signature cannot be read (some builtins) is taken as it is."""
    if not callable(callback):
        raise InvalidArgumentError(
            int(ErrorCode.INVALID_ARGUMENT),
            f"{op}: the callback must be callable, not {type(callback).__name__} {callback!r}",
        )
    if not args:
        return
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*args)
    except TypeError as exc:
        raise InvalidArgumentError(
            int(ErrorCode.INVALID_ARGUMENT),
            f"{op}: the callback is called as callback({', '.join(args)}), and "
            f"{getattr(callback, '__qualname__', callback)!r}{signature} cannot take that "
            f"({exc})",
        ) from None


def _text(content: str | bytes) -> str:
    """The content as the nodes keep it (bytes are sent as UTF-8 text)."""
    return content.decode("utf-8") if isinstance(content, bytes) else content


class ConfigMixin:
    """Config methods; the Client provides the attributes below."""

    namespace: str
    group: str
    timeout: float
    config_write_timeout: float
    labels: dict[str, str]
    config_max_bytes: int
    _agent: ClientAgent
    _config_cache: DiskCache | None
    _config_logged: set[ConfigKey]
    _config_lock: threading.Lock
    _notifications: queue.SimpleQueue[Any]  # the notifier thread's (client.py)
    _listeners: ListenerTable  # (listeners.py)

    if TYPE_CHECKING:

        def _call(self, op: str, fields: dict[str, Any]) -> Any: ...

    # -- reads ------------------------------------------------------------------------------
    def config_get(
        self,
        data_id: str,
        default: Any = None,
        group: str | None = None,
        namespace: str | None = None,
        revision: int | None = None,
    ) -> ConfigInfo | Any:
        """The data id's current version (``revision``: that past revision), or ``default``
        when it does not exist (or was deleted).

        Never older than what this client has seen of it (its own writes included): a node
        that has not caught up hands the read to another.  With ``cache_dir``, the version
        read is kept on disk, and while no node answers, or those that answer cannot serve
        it yet (UNAVAILABLE: e.g. nodes back after an outage without a majority, still
        catching up), the disk copy is returned (its ``from_cache`` is True; logged once
        per data id).
        """
        key = self._config_key(data_id, group, namespace)
        fields = {**_key_fields(key), "revision": revision}
        self._config_check("config_get", fields)
        cache = self._config_cache
        saved = cache is not None and revision is None and cache.config_path(key).is_file()
        try:
            info: ConfigInfo = self._config_call("config_get", key, fields, saved)
        except NotFoundError:
            return default
        except (ServerUnreachableError, ServerError) as exc:
            # no node answers, or those that do cannot serve it yet (UNAVAILABLE: catching
            # up after a start without a majority, or behind what this client has seen)
            if isinstance(exc, ServerError) and exc.code != ErrorCode.UNAVAILABLE:
                raise
            if cache is None or revision is not None:
                raise
            writer = getattr(self._agent, "writer", None)
            if writer is not None:  # the version this client last read or wrote may still
                writer.settle_config(key, DISK_SETTLE)  # be on its way to disk (review18)
            copy = cache.load_config(key)
            if copy is None:
                raise
            with self._config_lock:
                first = key not in self._config_logged
                self._config_logged.add(key)
            if first:
                log.warning(
                    "config %s: %s; serving the disk cache copy (revision %d) from %s",
                    key,
                    "no meshreg server answers"
                    if isinstance(exc, ServerUnreachableError)
                    else f"no meshreg server can serve it now ({exc})",
                    copy.revision,
                    cache.directory if cache is not None else "",
                )
            return copy
        with self._config_lock:
            self._config_logged.discard(key)
        return info

    def config_list(
        self,
        pattern: str = "*",
        group: str | None = None,
        namespace: str | None = None,
        all_groups: bool | None = None,
        page_size: int = 100,
        deleted: bool = False,
    ) -> list[ConfigInfo]:
        """The data ids of a namespace whose name matches ``pattern`` (``*`` any run, ``?``
        one character), sorted by group and data id, without content; follows every page.
        **Every group** unless ``group`` names one, as ``meshreg config list`` without
        ``-g`` and Nacos's config list (an empty group lists them all);
        ``all_groups=False``: the client's group (what a call without arguments listed
        before), ``True``: every group (the default).  ``deleted``: the deleted data ids
        whose tombstone is kept (``ConfigInfo.deleted``) too.  A client key allowed only
        some groups is refused a list of every group (PERMISSION_DENIED): give ``group``."""
        if all_groups and group is not None:
            raise ConfigError(
                f"config_list: group={group!r} and all_groups=True contradict each other: "
                "give one group, or leave group out for every group"
            )
        ns = namespace or self.namespace
        if group is None and all_groups is False:
            group = self.group
        fields: dict[str, Any] = {
            "namespace": ns,
            "group": group,  # None: every group of the namespace
            "pattern": pattern,
            "page_size": page_size,
        }
        if deleted:
            fields["deleted"] = True
        self._config_check("config_list", fields)
        items: list[ConfigInfo] = []
        while len(items) < MAX_LIST_ITEMS:
            try:
                page: ConfigPage = self._config_call("config_list", None, fields)
            except PermissionDeniedError as exc:
                if group is not None:
                    raise
                raise PermissionDeniedError(
                    exc.code,
                    f"{exc.detail} (config_list without a group lists every group of "
                    f"namespace {ns!r}: give group=... for one (CLI: -g GROUP))",
                    exc.server,
                ) from None
            items.extend(page.items)
            if page.next_cursor is None:
                break
            if page.next_cursor == fields.get("cursor"):
                raise ServerError(
                    7, f"config_list: the node returned cursor {page.next_cursor!r} twice"
                )
            fields["cursor"] = page.next_cursor
        return items

    def config_history(
        self,
        data_id: str,
        limit: int = 100,
        group: str | None = None,
        namespace: str | None = None,
    ) -> list[ConfigInfo]:
        """The data id's kept revisions, newest first (at most ``limit``), content included;
        several versions of one revision (owners racing): the winner first."""
        key = self._config_key(data_id, group, namespace)
        if type(limit) is not int or limit < 1:
            raise InvalidArgumentError(
                int(ErrorCode.INVALID_ARGUMENT),
                f"config_history {key}: limit must be a whole number of at least 1, not {limit!r}",
            )
        fields: dict[str, Any] = {**_key_fields(key), "page_size": max(1, min(limit, 200))}
        self._config_check("config_history", fields)
        items: list[ConfigInfo] = []
        while len(items) < limit:
            page: ConfigPage = self._config_call("config_history", key, fields)
            items.extend(page.items)
            if page.next_cursor is None or page.next_cursor == fields.get("cursor"):
                break
            fields["cursor"] = page.next_cursor
        return items[:limit]

    # -- writes -----------------------------------------------------------------------------
    def config_publish(
        self,
        data_id: str,
        content: str,
        type: str | None = None,
        if_revision: int | None = None,
        desc: str | None = None,
        tags: dict[str, str] | None = None,
        group: str | None = None,
        namespace: str | None = None,
        request_id: str | None = None,
    ) -> ConfigInfo:
        """Create or replace a config; returns the new version (acknowledged by a majority).

        ``type``: text, json, yaml, properties, toml or xml; None: the type the config has
        (text for a new one), kept by its owner node in the same write.

        ``if_revision``: compare-and-set (0: the data id must not exist; N: it must be at
        revision N), else ConflictError naming the current revision.  ``request_id``: this
        write's id (16..64 characters of ``0-9A-Za-z_.:-``; default: a random one), the
        same to re-send a write whose outcome was unknown (OutcomeUnknownError names it):
        the cluster applies one id at most once and answers with the version it made.
        Every write below takes it too.
        """
        key = self._config_key(data_id, group, namespace)
        # echo false: the answer leaves the content out (we have it: a 1 MiB publish does
        # not cost 1 MiB back; older nodes ignore the field and send it)
        fields = {**_key_fields(key), "content": content, "echo": False}
        fields.update(_present(type=type, if_revision=if_revision, desc=desc, tags=tags))
        info = self._config_write("config_publish", key, fields, request_id, keep=False)
        text = _text(content)
        if isinstance(info, ConfigInfo):
            main = info.main if info.gray_served and info.main is not None else info
            if main.md5 != content_md5(text):  # a re-send whose id made another version
                info = self._echoed("config_publish", key, fields)
            elif not info.gray_served:
                info = dataclasses.replace(info, content=text)
            elif info.main is not None:  # what we published
                info = dataclasses.replace(info, main=dataclasses.replace(info.main, content=text))
        return self._keep_written(key, info)

    def config_delete(
        self,
        data_id: str,
        if_revision: int | None = None,
        group: str | None = None,
        namespace: str | None = None,
        request_id: str | None = None,
    ) -> ConfigInfo:
        """Delete a config (a tombstone revision, returned); NotFoundError if absent."""
        key = self._config_key(data_id, group, namespace)
        fields = {**_key_fields(key), **_present(if_revision=if_revision)}
        return self._config_write("config_delete", key, fields, request_id)  # type: ignore[no-any-return]

    def config_rollback(
        self,
        data_id: str,
        revision: int,
        if_revision: int | None = None,
        group: str | None = None,
        namespace: str | None = None,
        request_id: str | None = None,
    ) -> ConfigInfo:
        """A new revision with the content, type, description and tags of ``revision``."""
        key = self._config_key(data_id, group, namespace)
        fields = {**_key_fields(key), "revision": revision, **_present(if_revision=if_revision)}
        return self._config_write("config_rollback", key, fields, request_id)  # type: ignore[no-any-return]

    def config_gray(
        self,
        data_id: str,
        content: str,
        labels: dict[str, str] | None = None,
        clients: list[str] | None = None,
        type: str | None = None,
        if_revision: int | None = None,
        group: str | None = None,
        namespace: str | None = None,
        request_id: str | None = None,
    ) -> ConfigInfo:
        """Publish a gray version for the clients whose labels include every pair of
        ``labels`` or whose address (its IP address as the node sees it, no port) is in
        ``clients``."""
        key = self._config_key(data_id, group, namespace)
        fields = {**_key_fields(key), "content": content, "echo": False}  # (as config_publish)
        fields.update(_present(labels=labels, clients=clients, type=type, if_revision=if_revision))
        info = self._config_write("config_gray", key, fields, request_id, keep=False)
        text = _text(content)
        if isinstance(info, ConfigInfo) and info.gray is not None:
            if info.gray.md5 != content_md5(text):  # a re-send whose id made another version
                info = self._echoed("config_gray", key, fields)
            else:
                info = dataclasses.replace(info, gray=dataclasses.replace(info.gray, content=text))
        return self._keep_written(key, info)

    def config_promote(
        self,
        data_id: str,
        if_revision: int | None = None,
        group: str | None = None,
        namespace: str | None = None,
        request_id: str | None = None,
    ) -> ConfigInfo:
        """The gray version becomes the main one (NotFoundError: no gray version)."""
        key = self._config_key(data_id, group, namespace)
        fields = {**_key_fields(key), **_present(if_revision=if_revision)}
        return self._config_write("config_promote", key, fields, request_id)  # type: ignore[no-any-return]

    def config_gray_drop(
        self,
        data_id: str,
        if_revision: int | None = None,
        group: str | None = None,
        namespace: str | None = None,
        request_id: str | None = None,
    ) -> ConfigInfo:
        """Remove the gray version (NotFoundError: none)."""
        key = self._config_key(data_id, group, namespace)
        fields = {**_key_fields(key), **_present(if_revision=if_revision)}
        return self._config_write("config_gray_drop", key, fields, request_id)  # type: ignore[no-any-return]

    # -- listening --------------------------------------------------------------------------
    def config_listen(
        self,
        data_id: str,
        callback: ConfigListener,
        group: str | None = None,
        namespace: str | None = None,
    ) -> ConfigInfo | None:
        """Call ``callback(content, revision)`` now and whenever what this client is served
        changes; content None: absent or deleted.  Returns the current version (None:
        absent).  Callbacks run on the client's notifier thread, one at a time; the same
        callback listening again to a data id is called now, and still once per change.

        A push from the server pulls the new version (gray resolved with this client's
        labels); every 30 s and after a server switch the client listens again with the
        revision it holds, so missed pushes come back.  With ``cache_dir``, while no node
        answers, the disk copy is served (logged) until one does.  No node answers (none
        reachable or none ready) and no disk copy: raises with ``listener_kept`` true: the
        listener stays, as with Nacos, and is called once a node answers (listened to again
        when a node answers, and every 3 s); ``config_unlisten`` drops it, and so does a
        later refusal waiting cannot cure (logged).
        """
        key = self._config_key(data_id, group, namespace)
        self._config_check("config_listen", {**_key_fields(key), "revision": 0})
        cache = self._config_cache
        saved = cache.load_config(key) if cache is not None else None
        _check_callable("config_listen", callback, ("content", "revision"))
        live = self._listeners.add(key, callback)
        try:
            result: ConfigInfo | None = self._config_wait(
                "config_listen",
                key,
                lambda fut: self._agent.submit(ConfigListen(key, live, self.timeout, fut, saved)),
            )
        except BaseException as exc:
            if isinstance(exc, MeshregError) and exc.listener_kept:
                self._listeners.take(live)
            else:
                self._listeners.discard(key, live)
            raise
        self._listeners.take(live)
        return result

    def config_unlisten(
        self,
        data_id: str,
        callback: ConfigListener | None = None,
        group: str | None = None,
        namespace: str | None = None,
    ) -> None:
        """Stop calling ``callback`` (None: every callback) for the data id: once this
        returns, it is not called again for it (a call running then finishes)."""
        key = self._config_key(data_id, group, namespace)
        self._listeners.mute(key, callback)
        self._config_wait(
            "config_unlisten",
            key,
            lambda fut: self._agent.submit(ConfigUnlisten(key, callback, fut)),
        )

    # -- operations ---------------------------------------------------------------------------
    def config_force_ready(self) -> dict[str, Any]:
        """Make the node this client is connected to (``server``) serve config reads at
        once without catching up from a majority: the operator's override for a lone
        survivor (docs/CONFIG.md "The ready gate"); needs admin access to everything.
        Returns ``{"node", "was_ready", "forced_ready"}`` (``node``: the node that did
        it; give the client that one server alone to be sure which)."""
        result: dict[str, Any] = self._call("config_force_ready", {})
        return result

    # -- internals ----------------------------------------------------------------------------
    def _echoed(self, op: str, key: ConfigKey, fields: dict[str, Any]) -> Any:
        """The version a re-sent write's id made, content included: sent once more with
        ``echo`` (applied at most once, so nothing changes).  Its content is not the one
        given: the id was used for another write first (review55 F2: the given content was
        returned, and kept on disk, with the other version's revision and md5)."""
        return self._config_write(op, key, {**fields, "echo": True}, fields["request_id"], False)

    def _config_key(self, data_id: str, group: str | None, namespace: str | None) -> ConfigKey:
        return ConfigKey(namespace or self.namespace, group or self.group, data_id)

    def _keep_written(self, key: ConfigKey, info: Any) -> ConfigInfo:
        """A write's result, kept on disk as a read's is, by the same writer and in turn
        with the reads' and pushes' copies of the data id: else a read that fell back on
        the disk copy while no node answered went back to the version this write replaced
        (review18 F6); on another thread, a read's copy of the version before, saved
        after it, did the same (review18's test, once in CI).  A delete removes the copy."""
        writer = getattr(self._agent, "writer", None)
        if writer is not None and isinstance(info, ConfigInfo):
            writer.save_config(key, None if info.deleted else info)
        return info  # type: ignore[no-any-return]

    def _config_write(
        self,
        op: str,
        key: ConfigKey,
        fields: dict[str, Any],
        request_id: str | None = None,
        keep: bool = True,
    ) -> Any:
        """One logical write: the caller's ``request_id``, else a fresh one (32 random hex
        digits), the same on every re-send of it (after a timeout, an UNAVAILABLE, a
        failover), so the cluster applies it at most once.  A caller re-sends a write whose
        outcome was unknown (``OutcomeUnknownError.request_id``) by passing that id.
        ``keep``: keep the result on disk (``_keep_written``; False: the caller does,
        once it has put back the content the node left out)."""
        fields["request_id"] = request_id if request_id is not None else secrets.token_hex(16)
        if request_id is not None:  # the caller's own id: a re-send of an earlier call
            fields["resend"] = True
        self._config_check(op, fields, self.config_max_bytes)
        try:
            result = self._config_call(op, key, fields)
        except KeyboardInterrupt as exc:  # (Ctrl-C) the write may have left: name its id
            exc.meshreg_outcome_unknown = (  # type: ignore[attr-defined]
                f"{op} of {key} may have been sent: its outcome is unknown (it may still be "
                f"applied); re-send it with request_id {fields['request_id']} (CLI: "
                "--request-id): it is applied at most once"
            )
            raise
        return self._keep_written(key, result) if keep else result

    @staticmethod
    def _config_check(
        op: str, fields: dict[str, Any], max_bytes: int = HARD_MAX_CONTENT_BYTES
    ) -> None:
        """The node's own checks, before anything leaves; ``max_bytes``: the content cap
        (a node refuses more without being able to say which request it refused)."""
        try:
            parse_config_request(encode_request(op, 0, **fields), max_bytes)
        except RequestRejected as exc:
            if exc.code == ErrorCode.TOO_LARGE and max_bytes < HARD_MAX_CONTENT_BYTES:
                # refused here, no node asked: said as this client's (review82 F11: worded
                # "this node's limit")
                what = exc.message.partition("; this node's limit")[0]
                raise InvalidArgumentError(
                    int(exc.code),
                    f"{what}; this client refused it before sending: its config_max_bytes is "
                    f"{max_bytes} (the nodes' default cap); if your nodes allow more ([config] "
                    f"max_content_bytes, hard cap {HARD_MAX_CONTENT_BYTES}), raise it: "
                    "Client(config_max_bytes=...), CLI --max-bytes / MESHREG_CONFIG_MAX_BYTES",
                ) from None
            raise InvalidArgumentError(int(exc.code), exc.message) from None
        except UnicodeEncodeError:  # a lone surrogate: name the field (review 2026-12-07)
            where = _bad_text(fields, "") or "a string field"
            raise InvalidArgumentError(
                4,
                f"{op}: {where} holds a lone surrogate (a string that is not Unicode text, "
                "e.g. bytes decoded with surrogateescape): not UTF-8, nothing sent",
            ) from None
        except (TypeError, ValueError) as exc:  # not even encodable
            raise InvalidArgumentError(4, f"{op}: {exc}") from None

    def _config_budget(self, op: str) -> float:
        """A call's whole budget: a write's is ``config_write_timeout`` (Client)."""
        return self.config_write_timeout if op in CONFIG_WRITES else self.timeout

    def _config_call(
        self, op: str, key: ConfigKey | None, fields: dict[str, Any], saved: bool = False
    ) -> Any:
        budget = self._config_budget(op)
        return self._config_wait(
            op,
            key,
            lambda fut: self._agent.submit(ConfigCall(op, key, fields, budget, fut, saved)),
            fields.get("request_id") or "",
        )

    def _config_many(
        self, calls: list[tuple[str, ConfigKey, dict[str, Any]]], window: int = 64
    ) -> list[Any]:
        """Several config calls in flight at once (at most ``window``), in order; each one's
        result, or the exception it raised (shaped as by a single call).  A write gets its
        own request id and the node's checks, as ``_config_write`` (bad input is that
        call's InvalidArgumentError, and it is not sent).  Export and import: one round
        trip per window rather than per data id."""
        results: list[Any] = []
        inflight: list[tuple[int, str, ConfigKey, str, Future[Any]]] = []

        def collect() -> None:
            i, *outcome = inflight.pop(0)
            results[i] = self._config_outcome(*outcome)  # type: ignore[arg-type]

        for i, (op, key, fields) in enumerate(calls):
            results.append(None)
            if op in CONFIG_WRITES:
                fields.setdefault("request_id", secrets.token_hex(16))
                try:
                    self._config_check(op, fields, self.config_max_bytes)
                except InvalidArgumentError as exc:
                    results[i] = exc
                    continue
            fut: Future[Any] = Future()
            self._agent.submit(ConfigCall(op, key, fields, self._config_budget(op), fut))
            inflight.append((i, op, key, fields.get("request_id") or "", fut))
            if len(inflight) >= window:
                collect()
        while inflight:
            collect()
        return results

    def _config_outcome(self, op: str, key: ConfigKey, rid: str, fut: Future[Any]) -> Any:
        try:
            return self._config_wait(op, key, lambda f: None, rid, fut)
        except MeshregError as exc:
            return exc

    def _config_wait(
        self,
        op: str,
        key: ConfigKey | None,
        submit: Callable[[Future[Any]], None],
        rid: str = "",
        submitted: Future[Any] | None = None,
    ) -> Any:
        """Wait for the I/O thread's answer; errors name the op and the data id (and, for
        a write whose outcome is unknown, its request id ``rid``).  ``submitted``: a call
        submitted already (``_config_many``)."""
        fut: Future[Any] = Future() if submitted is None else submitted
        if submitted is None:
            submit(fut)
        where = f" {key}" if key is not None else ""
        wait = self._config_budget(op) + 2.0
        try:
            return fut.result(wait)
        except FutureTimeout:
            message = (
                f"{op}{where}: the meshreg client's I/O thread did not answer within {wait:g}s"
            )
            if rid:  # a write: it may have been sent, and applied
                raise OutcomeUnknownError(
                    f"{message}; the outcome of this write is unknown: re-send it with "
                    f"request_id={rid!r}",
                    rid,
                ) from None
            raise ServerUnreachableError(message) from None
        except ServerError as exc:
            if key is None or str(key) in exc.detail or key.data_id in exc.detail:
                raise
            detail = exc.detail.removeprefix(f"{op}: ")
            named_error = type(exc)(
                exc.code, f"{op}{where}: {detail}", exc.server, exc.unwritten, exc.revision
            )
            named_error.listener_kept = exc.listener_kept
            raise named_error from None
        except OutcomeUnknownError as exc:
            if key is None or str(key) in str(exc):
                raise
            raise OutcomeUnknownError(f"{key}: {exc}", exc.request_id) from None
        except ServerUnreachableError as exc:
            if key is None:
                raise
            named = ServerUnreachableError(f"{key}: {exc}")
            named.unsent, named.refused = exc.unsent, exc.refused
            named.listener_kept = exc.listener_kept
            raise named from None


def _present(**fields: Any) -> dict[str, Any]:
    """The fields given (None: absent, as on the wire)."""
    return {k: v for k, v in fields.items() if v is not None}
