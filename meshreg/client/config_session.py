"""The client's configuration-center policies, sans-IO: one part of ClientSession.

:class:`ConfigPolicy` holds no socket and reads no clock: ``ClientSession`` hands it
the config commands, config notifications, its ticks and failovers, and it answers by
sending requests through the session (``ClientSession.request``) and appending actions
to the session's output.  Tests drive it with the session's fake clock
(tests/client/test_client_session_config.py).

Rules (each with its constant below):

* **Never backwards, read your writes.** The highest revision seen per data id (by a
  read, a write's result, a listen or a push) goes with every read as ``min_revision``;
  a node that holds less answers UNAVAILABLE ("behind") and the read is sent to the next
  server in the list that was not tried yet, within the call's budget (docs/CONFIG.md).
  At most ``MAX_SEEN`` data ids are remembered (the oldest forgotten first).
* **Writes** (publish, delete, rollback, gray, promote, gray drop) go to the server,
  which forwards them to the data id's responsible node; their attempt budget is
  ``CONFIG_WRITE_ATTEMPT`` (configcenter/model.py), after the node's own deadline, so a node
  answers (at worst UNAVAILABLE: outcome unknown) before the client gives up on it.  A
  write carrying a ``request_id`` (the Client gives every write one) is applied at most
  once however often it is sent, so UNAVAILABLE sends it again, with the same id, to the
  next server not tried yet, as a read (below), within the call's budget; a timeout
  fails over and re-sends it the same way.  A write without one is sent once (old
  callers: a re-send might apply it twice).
* **Listening.** A listened data id has its topic subscribed and a ``config_listen``
  with the revision held; the answer brings the current version if newer.  A push with
  a higher revision pulls it (``config_get`` with ``min_revision`` = the pushed revision
  and the client's labels, so the gray version is resolved per client); so does a push
  at the held revision announcing another version (two owners assigned it during a
  membership change and the one a majority acknowledged won over the one pulled); a
  push meanwhile pulls again after.  Every ``CONFIG_RESYNC_INTERVAL`` and after every
  failover each listened data id is listened again with its held revision and md5 (what
  a disconnected listener missed comes back that way, another version of the held
  revision included).  Listeners are called when what
  this client is served changes (content md5, type, deleted), not for a revision that
  changed nothing for it (a gray version for other clients).
* **Disk.** Every version read or pushed is saved (``SaveConfig``) when its revision is
  not the one saved last; a first listen no node answers is served from the disk copy
  (``ConfigListen.saved``), logged once, and replaced by the live version as soon as a
  node answers anything (a probe, a push; listeners are called only if it differs).
* **Offline** (every server failed an attempt since the last answer: ClientSession's
  ``offline``): a ``config_get`` fails at once with the error a time-out would give (the
  Client then returns the disk copy, or raises), and so does one in flight whose caller
  holds a disk copy (``ConfigCall.saved``) when that becomes known; a first listen is
  served from the disk copy at once (or fails at once without one), and so is a first
  listen waiting when that becomes known.  The session's probe finds the node that comes back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meshreg.client.actions import (
    Action,
    CallConfigListener,
    Complete,
    Fail,
    SaveConfig,
    UnwatchConfigTopic,
    WatchConfigTopic,
)
from meshreg.client.commands import ConfigCall, ConfigListen, ConfigUnlisten, ReplyTo
from meshreg.client.configs import ConfigChanged, ConfigInfo, ConfigListener, ListenAnswer
from meshreg.configcenter.model import CONFIG_BEHIND_ATTEMPT, CONFIG_WRITE_ATTEMPT, ConfigKey
from meshreg.core.requests import DEADLINE_SLACK
from meshreg.errors import (
    ErrorCode,
    NotFoundError,
    OutcomeUnknownError,
    ServerError,
    ServerUnreachableError,
    with_listener_kept,
)

if TYPE_CHECKING:
    from meshreg.client.session import ClientSession

CONFIG_RESYNC_INTERVAL = 30.0  # s; every listened data id is listened again this often
# a first listen no node could answer raises, and keeps its listener (Nacos's redo)
KEPT_LISTENER = (
    "the listener is kept: it is called once a node answers (the client keeps trying); "
    "config_unlisten() drops it"
)
KEPT_LISTEN_RETRY = 3.0  # s; a kept listener's data id is listened to again this often
# until a node answers it (review59 F3: a node not ready yet refused it, and the next
# try was the 30 s resync)
MAX_SEEN = 100_000  # data ids whose highest seen revision is remembered
MIN_BUDGET = 0.001  # s; what a retry gets when the call's budget is spent
READ_RETRY_PAUSE = 0.05  # s; pause before a read every server refused is tried again
READ_RETRY_MAX = 1.0  # s; the longest such pause (it doubles from READ_RETRY_PAUSE)
# A listen or pull that failed while a push announced a newer revision is tried again after
# a pause doubling from the first to the second, not at the next resync (review14a F4: a
# listener whose only node was stopped and is catching up missed a change for 21 s)
PULL_RETRY_FIRST, PULL_RETRY_MAX = 0.5, 8.0
CONFIG_WRITES = frozenset(
    (
        "config_publish",
        "config_delete",
        "config_rollback",
        "config_gray",
        "config_promote",
        "config_gray_drop",
    )
)


def _outcome_unknown(
    op: str, exc: BaseException, request_id: str, stamped: bool = True
) -> OutcomeUnknownError:
    """A write no node answered within the call's time-out: it may have been applied, or
    be applied until its last attempt's deadline (``stamped``: it carried deadlines)."""
    how = (
        f"re-send it with request_id={request_id!r} (Client: request_id=...; CLI: "
        f"--request-id {request_id}): the cluster applies it at most once and answers with "
        "the version it made; or read the data id"
        if request_id
        else "it carried no request_id, so read the data id before writing again"
    )
    until = (
        f"; no node makes a version of it later than {DEADLINE_SLACK:g}s after this error "
        "(each attempt carries a deadline), but one made before may still become current "
        "when its node reaches a majority of its peers again"
        if stamped
        else ""
    )
    return OutcomeUnknownError(
        f"{exc}; the outcome of this {op} is unknown (it may have been applied, or may "
        f"still be{until}): {how}",
        request_id,
    )


def key_fields(key: ConfigKey) -> dict[str, Any]:
    return {"namespace": key.namespace, "group": key.group, "data_id": key.data_id}


def _served(entry: ConfigInfo | None) -> tuple[str, str] | None:
    """What a listener's callback depends on: (md5, type); None: absent or deleted."""
    return None if entry is None else (entry.md5, entry.type)


def _replaced(lst: Listening, note: ConfigChanged) -> bool:
    """A push at the held revision announces another version than the one held: two
    owners assigned that revision during a membership change and the one a majority
    acknowledged won on the pushing node (docs/CONFIG.md, the merge rule).  Held gray:
    compared with the push's ``gray_md5`` (an older node sends none: pull to see)."""
    held = lst.entry
    if held is None:
        return not note.deleted
    if note.deleted:
        return True
    if held.gray_served:
        main = held.main.md5 if held.main is not None else None
        return (
            note.gray_md5 is None
            or held.md5 != note.gray_md5
            or (main is not None and main != note.md5)
        )
    return held.md5 != note.md5


@dataclass
class Listening:
    """One listened data id."""

    key: ConfigKey
    listeners: list[ConfigListener] = field(default_factory=list)
    revision: int = 0  # held: the revision the listeners were last given
    entry: ConfigInfo | None = None  # what they were given (None: absent or deleted)
    known: bool = False  # they were given something (a node's answer or the disk copy)
    from_disk: bool = False  # what they hold came from the disk cache
    busy: bool = False  # a listen or a pull is in flight
    want: int = 0  # a push announced this revision: pull it (again) when not busy
    recheck: bool = False  # a push announced another version at the held revision
    saved: ConfigInfo | None = None  # the disk copy, for a first listen nobody answers
    waiting: list[tuple[ReplyTo, ConfigListener]] = field(default_factory=list)

    @property
    def content(self) -> str | None:
        return None if self.entry is None else self.entry.content


class ConfigPolicy:
    """The config side of a ClientSession; see the module's rules."""

    def __init__(self, session: ClientSession, labels: dict[str, str] | None = None) -> None:
        self.s = session
        self.labels = dict(labels or {})
        self.seen: dict[ConfigKey, int] = {}  # data id -> highest revision seen
        # data id -> the version last saved to disk: its revision and what it serves (two
        # versions can hold one revision: the one a majority acknowledged wins it later)
        self.saved: dict[ConfigKey, tuple[int, tuple[str, str] | None]] = {}
        self.listens: dict[ConfigKey, Listening] = {}
        self._next_resync = math.inf
        self._next_kept_listen = math.inf  # the next try of the listens kept unanswered
        self._from_disk = 0  # listens whose listeners hold the disk copy
        self._later: list[tuple[float, tuple[Any, ...]]] = []  # (when, _read's arguments)
        # data id -> (when its pull is tried again, the pause after that one)
        self._pull_retry: dict[ConfigKey, tuple[float, float]] = {}
        # config_get calls in flight the caller can answer from its disk copy: they fail
        # as soon as the client is offline (id of the reply_to -> it)
        self._with_copy: dict[int, ReplyTo] = {}

    # -- what the session reads --------------------------------------------------------------
    def next_wake(self) -> float:
        wake = self._next_resync if self.listens else math.inf
        retry = min((when for when, _ in self._pull_retry.values()), default=math.inf)
        later = min((when for when, _ in self._later), default=math.inf)
        return min(wake, retry, later, self._next_kept_listen)

    def seen_revision(self, key: ConfigKey) -> int:
        return self.seen.get(key, 0)

    # -- inputs (from ClientSession) ---------------------------------------------------------
    def handle(self, command: ConfigCall | ConfigListen | ConfigUnlisten) -> None:
        if isinstance(command, ConfigCall):
            self._call(command)
        elif isinstance(command, ConfigListen):
            self._listen_command(command)
        else:
            self._unlisten(command)

    def on_notification(self, note: ConfigChanged) -> None:
        lst = self.listens.get(note.key)
        if lst is None:
            return
        if lst.known and not lst.from_disk and note.revision <= lst.revision:
            if note.revision < lst.revision or not _replaced(lst, note):
                return  # nothing new (or an echo of what we pulled already)
            lst.recheck = True  # another version won the held revision: pull it
        lst.want = max(lst.want, note.revision)
        if lst.busy:
            return  # pulled again when the answer in flight is in
        if not lst.known or lst.from_disk:
            self._listen(lst)  # a node speaks: take the live version
        elif note.deleted:
            lst.recheck = False
            self._deliver(lst, None, note.revision)
        else:
            self._pull(lst)

    def tick(self, now: float) -> None:
        if self._pull_retry:
            for key, (when, _) in list(self._pull_retry.items()):
                lst = self.listens.get(key)
                if lst is None or not (lst.want > lst.revision or lst.recheck):
                    del self._pull_retry[key]  # unlistened, or pulled meanwhile
                elif when <= now and not lst.busy:
                    self._pull(lst)
        if self._later and any(when <= now for when, _ in self._later):
            due = [args for when, args in self._later if when <= now]
            self._later = [item for item in self._later if item[0] > now]
            for args in due:
                self._read(*args)
        if now >= self._next_kept_listen:
            self._next_kept_listen = math.inf
            for lst in list(self.listens.values()):
                if not lst.known and lst.listeners:
                    if not lst.busy:
                        self._listen(lst)
                    self._next_kept_listen = now + KEPT_LISTEN_RETRY
        if self.listens and now >= self._next_resync:
            self._next_resync = now + CONFIG_RESYNC_INTERVAL
            self.relisten()

    def relisten(self) -> None:
        """Listen again to every listened data id with its held revision (the backstop
        every resync interval, and after a failover: pushes may have been missed)."""
        for lst in list(self.listens.values()):
            if not lst.busy:
                self._listen(lst)

    @property
    def stale(self) -> bool:
        """Some listeners hold the disk copy (O(1): read on every reply)."""
        return self._from_disk > 0

    def went_offline(self) -> None:
        """No server answers: reads and first listens waiting with a disk copy are served
        it now (review17 F2: a process started in an outage waited its whole time-out for
        its first config_get)."""
        waiting, self._with_copy = self._with_copy, {}
        for reply_to in waiting.values():
            self._fail(reply_to, self.s.offline_error("config_get"))
        for lst in list(self.listens.values()):
            if lst.waiting and not lst.known and lst.saved is not None:
                self._serve_disk(lst, self.s.offline_error("config_listen"))

    def server_answers(self) -> None:
        """A node answered something: listen again to what is served from disk."""
        for lst in list(self.listens.values()):
            if lst.from_disk and not lst.busy:
                self._listen(lst)

    def heard_again(self) -> None:
        """A node answered after a silence: listen to what was never answered (listeners
        kept while no node answered, ``KEPT_LISTENER``)."""
        for lst in list(self.listens.values()):
            if not lst.known and not lst.busy:
                self._listen(lst)

    def abandon(self, error: BaseException) -> None:
        later, self._later = self._later, []
        for _, args in later:
            args[4](error)  # the read's ``err``
        for lst in self.listens.values():
            for reply_to, _ in lst.waiting:
                self._out(Fail(reply_to, error))
            lst.waiting.clear()

    # -- bookkeeping --------------------------------------------------------------------------
    def note(self, key: ConfigKey, revision: int) -> None:
        """``revision`` of ``key`` was seen: later reads must not return less."""
        if revision > self.seen.get(key, 0):
            if key not in self.seen and len(self.seen) >= MAX_SEEN:
                del self.seen[next(iter(self.seen))]  # the oldest seen first
            self.seen[key] = revision

    def _save(self, key: ConfigKey, entry: ConfigInfo | None, revision: int) -> None:
        version = (revision, _served(entry))
        if self.saved.get(key) == version:
            return  # on disk already: no write (and no fsync) per read
        if key not in self.saved and len(self.saved) >= MAX_SEEN:
            del self.saved[next(iter(self.saved))]
        self.saved[key] = version
        self._out(SaveConfig(key, entry))

    def _out(self, action: Action) -> None:
        self.s._out.append(action)

    # -- requests -----------------------------------------------------------------------------
    def _call(self, cmd: ConfigCall) -> None:
        key, reply_to = cmd.key, cmd.reply_to
        if cmd.op == "config_get" and self.s.offline:  # the Client serves its disk copy
            self._fail(reply_to, self.s.offline_error("config_get"))
            return
        if cmd.op == "config_get" and key is not None:
            if cmd.saved:
                self._with_copy[id(reply_to)] = reply_to

            def got(info: ConfigInfo) -> None:
                self._with_copy.pop(id(reply_to), None)
                self.note(key, info.revision)
                if cmd.fields.get("revision") is None:  # the current version: keep it
                    self._save(key, info, info.revision)
                self._out(Complete(reply_to, info))

            def failed(exc: BaseException) -> None:
                self._with_copy.pop(id(reply_to), None)
                if isinstance(exc, NotFoundError) and cmd.fields.get("revision") is None:
                    # deleted (or never there): its disk copy goes, as after a pushed
                    # delete (review18 F5: the deleted content came back in an outage)
                    self.saved.pop(key, None)
                    self._out(SaveConfig(key, None))
                    if exc.revision is not None:  # the delete's: no older version after it
                        self.note(key, exc.revision)  # (review38 F1: a node behind served one)
                self._fail(reply_to, exc)

            deadline = self.s._now + cmd.timeout
            self._read(key, dict(cmd.fields), deadline, got, failed)
            return

        def done(result: Any) -> None:
            if key is not None and isinstance(result, ConfigInfo):
                self.note(key, result.revision)

        if cmd.op in CONFIG_WRITES and key is not None and cmd.fields.get("request_id"):

            def wrote(result: Any) -> None:
                done(result)
                self._out(Complete(reply_to, result))

            deadline = self.s._now + cmd.timeout
            fail = lambda e: self._fail(reply_to, e)  # noqa: E731
            self._read(key, dict(cmd.fields), deadline, wrote, fail, cmd.op)
            return

        attempt = CONFIG_WRITE_ATTEMPT if cmd.op in CONFIG_WRITES else None
        self.s.request(
            cmd.op, cmd.fields, cmd.timeout, reply_to, on_reply=done, attempt_timeout=attempt
        )

    def _fail(self, reply_to: ReplyTo, error: BaseException) -> None:
        self._out(Fail(reply_to, error))

    def _read(
        self,
        key: ConfigKey,
        fields: dict[str, Any],
        deadline: float,
        ok: Any,
        err: Any,
        op: str = "config_get",
        tried: tuple[str, ...] = (),
        via: str | None = None,
        rounds: int = 0,
        unknown: bool = False,
        answer: ServerError | None = None,
        answered: tuple[str, ...] = (),
    ) -> None:
        """A read that must not step backwards: ``min_revision`` (get) is the highest seen
        revision, labels go along; a node that is behind or catching up (UNAVAILABLE)
        hands the read to the next server not tried yet; when every one was, the round
        starts again after a pause (``READ_RETRY_PAUSE`` doubling to ``READ_RETRY_MAX``),
        until the call's deadline.  A write with a request id goes the same way (its
        fields unchanged: the same id every time); ``unknown``: an earlier attempt of it
        had an unknown outcome, so a final "nothing was written" is not the whole story;
        ``answer``: the last error a node answered (UNAVAILABLE), for the final error when
        the servers asked after it do not answer (it names why, and who answered);
        ``answered``: the servers of ``tried`` that answered (the others did not)."""
        write = op in CONFIG_WRITES
        sent = self.s._now  # an answer after a whole write attempt: one attempt timed out
        if op == "config_get":
            least = int(fields.get("min_revision") or 0)
            fields["min_revision"] = max(least, self.seen_revision(key))
        if self.labels and not write:
            fields["labels"] = dict(self.labels)
        target = via or self.s.server

        stamped = self.s.settings.wall_offset is not None  # writes carry deadlines

        def failed(exc: BaseException) -> None:
            # an attempt that timed out (the session failed over and sent it again) may
            # have landed: its outcome is unknown, whatever a later attempt says
            timed_out = write and self.s._now - sent >= CONFIG_WRITE_ATTEMPT
            if isinstance(exc, ServerUnreachableError) and answer is not None:
                # a node answered (e.g. a minority's "nothing was written") and those asked
                # after it did not: say both, the answer first (it is the likely cause)
                silent = [s for s in dict.fromkeys((*tried, target)) if s not in answered]
                late = f"then no answer from {', '.join(silent) or target}"
                if budget < (attempt or self.s.settings.attempt_timeout):
                    late += f" in the {budget:.2g}s left of this call's time-out"
                said = f"{answer} ({late})"
                if write and exc.unsent and not unknown:
                    # every node that answered wrote nothing, and the request never left
                    # for the others (no handshake: down): nothing was written (review57
                    # F1: a majority down was called "the outcome is unknown")
                    exc = ServerError(answer.code, f"{answer.detail} ({late})", answer.server,
                                      unwritten=True)  # fmt: skip
                elif write:  # the copies sent to the silent ones may still land: the node
                    # that answered wrote nothing, the write's outcome is unknown (review81
                    # F4: "nothing was written ... the outcome is unknown", in one message)
                    said = said.replace("nothing was written", "that node wrote nothing")
                    exc = _outcome_unknown(
                        op, ServerUnreachableError(said), fields.get("request_id", ""), stamped
                    )
                else:
                    exc = self._read_refused(
                        key, answer, f"{answer.detail} ({late})", (*tried, target)
                    )
            elif write and isinstance(exc, ServerUnreachableError):  # no answer at all
                if not (exc.unsent and not unknown):  # (unsent: it never left, review19 F8)
                    exc = _outcome_unknown(op, exc, fields.get("request_id", ""), stamped)
            elif getattr(exc, "code", None) == ErrorCode.UNAVAILABLE:
                done = (*tried, target)
                nxt = self._another_server(done)
                now = self.s._now
                refused = isinstance(exc, ServerError) and (
                    exc.unwritten or "nothing was written" in exc.detail  # (older nodes)
                )
                unknown_now = unknown or timed_out
                was_unknown = unknown_now or (write and not refused)
                said = exc if isinstance(exc, ServerError) else answer
                # who answered (a request sent straight to a member may have fallen back
                # on the client's server: the reply's source, not ``target``)
                heard = (*answered, exc.server) if isinstance(exc, ServerError) else answered
                if nxt is not None and now < deadline:
                    self._read(
                        key, fields, deadline, ok, err, op, done, nxt, rounds, was_unknown, said,
                        heard,
                    )  # fmt: skip
                    return
                pause = min(READ_RETRY_MAX, READ_RETRY_PAUSE * 2**rounds)
                if now + pause < deadline:
                    again = (
                        key, fields, deadline, ok, err, op, (), None, rounds + 1, was_unknown, said
                    )  # fmt: skip
                    self._later.append((now + pause, again))
                    return
                if refused and unknown_now:  # this attempt wrote nothing; an earlier may have
                    # (a cut-off owner that took the first attempt before it saw its peers
                    # go): the outcome is unknown, and the error names the request id to
                    # re-send, as any other (review of 2026-12-07: it was a ServerError
                    # saying "re-send it with the same request_id" without naming it)
                    assert isinstance(exc, ServerError)
                    this = exc.detail.replace("nothing was written", "this attempt wrote nothing")
                    exc = _outcome_unknown(
                        op,
                        ServerError(exc.code, f"{this}; but an earlier attempt of this write "
                                    "had an unknown outcome", exc.server),
                        fields.get("request_id", ""),
                        stamped,
                    )  # fmt: skip
                if isinstance(exc, ServerError) and len(done) > 1:
                    exc = self._read_refused(key, exc, exc.detail, done)
            err(exc)

        budget = max(MIN_BUDGET, deadline - self.s._now)
        attempt = CONFIG_WRITE_ATTEMPT if write else None
        if op == "config_get" and fields["min_revision"] > 0:
            # a node that holds less waits up to BEHIND_WAIT for it before it answers
            # "behind": wait longer, so that answer (which names what it holds) arrives
            # and the read goes on to the next server, instead of suspecting a node that is
            # up and working and failing with "no reply" (review11's DR run)
            attempt = max(self.s.settings.attempt_timeout, CONFIG_BEHIND_ATTEMPT)
        if write and (tried or rounds):  # an earlier attempt was sent: the owner checks
            fields["resend"] = True  # the request id with a majority (PROTOCOL.md 2.15)
        self.s.request(op, dict(fields), budget, on_reply=ok, on_error=failed, via=via,
                       attempt_timeout=attempt)  # fmt: skip

    def _read_refused(
        self, key: ConfigKey, answer: ServerError, detail: str, tried: tuple[str, ...]
    ) -> ServerError:
        """The error of a read the nodes refused (UNAVAILABLE) until its time-out: what
        the last one answered (code, message, address), who was asked, what to try."""
        hint = "the cluster is catching up or has no majority: retry in a moment"
        if "check the clocks" in answer.detail:  # late on arrival (review of 2026-12-07: the hint
            # said "catching up" under a message that said "check the clocks")
            hint = (
                "the nodes refused it as arriving after its deadline, by their clocks: this "
                "client's clock is likely behind the cluster's; check NTP on this host"
            )
        elif "you have seen" in answer.detail:  # behind this client's revision floor
            hint += (
                "; if no node will ever hold it (the cluster lost its data, or was rebuilt "
                'from an export without its revisions: docs/CONFIG.md "Revisions on '
                'import"), only a new Client (a restarted process) reads it again'
            )
        return ServerError(
            answer.code,
            f"{detail} (servers tried: {', '.join(dict.fromkeys(tried))}; this client has "
            f"seen revision {self.seen_revision(key)} of {key}); {hint}",
            answer.server,
            answer.unwritten,
        )

    def _another_server(self, tried: tuple[str, ...]) -> str | None:
        """The next server in the list after the current one that was not tried yet."""
        n = len(self.s.servers)
        start = self.s._server_index
        for i in range(1, n + 1):
            address = self.s._address((start + i) % n)
            if address not in tried:
                return address
        return None

    # -- listening ----------------------------------------------------------------------------
    def _listen_command(self, cmd: ConfigListen) -> None:
        lst = self.listens.get(cmd.key)
        held = lst is not None and (lst.known or lst.saved is not None)
        if self.s.offline and cmd.saved is None and not held:  # nothing to serve: say so now
            kept = with_listener_kept(self.s.offline_error("config_listen"), KEPT_LISTENER)
            if kept.listener_kept:  # listened to when a node answers
                self._next_kept_listen = min(
                    self._next_kept_listen, self.s._now + KEPT_LISTEN_RETRY
                )
                lst = self._listening(cmd.key) if lst is None else lst
                if cmd.listener not in lst.listeners:
                    lst.listeners.append(cmd.listener)
            self._fail(cmd.reply_to, kept)
            return
        if lst is None:
            lst = self._listening(cmd.key)
        if lst.known:
            if cmd.listener not in lst.listeners:  # the same callback twice: once (Nacos)
                lst.listeners.append(cmd.listener)
            self._out(CallConfigListener(cmd.listener, lst.content, lst.revision))
            self._out(Complete(cmd.reply_to, lst.entry))
            return
        if cmd.saved is not None and lst.saved is None:
            lst.saved = cmd.saved
        lst.waiting.append((cmd.reply_to, cmd.listener))
        if self.s.offline:  # no node answers: the disk copy now
            self._serve_disk(lst, self.s.offline_error("config_listen"))
            return
        if not lst.busy:
            self._listen(lst, cmd.timeout)

    def _listening(self, key: ConfigKey) -> Listening:
        """A new listened data id: its topic subscribed, the resync armed."""
        lst = self.listens[key] = Listening(key)
        self._out(WatchConfigTopic(key))
        if self._next_resync == math.inf:
            self._next_resync = self.s._now + CONFIG_RESYNC_INTERVAL
        return lst

    def _listen(self, lst: Listening, timeout: float | None = None) -> None:
        key = lst.key
        lst.busy = True
        # Held revision; nothing held (or only the disk copy, which may be from another
        # cluster's history): 0, so the node answers with what it has.
        held = lst.revision if lst.known and not lst.from_disk else 0
        fields: dict[str, Any] = {**key_fields(key), "revision": held}
        if held:  # and what is held at it: another version of that revision comes back
            fields["md5"] = lst.entry.md5 if lst.entry is not None else ""

        def answered(ans: ListenAnswer) -> None:
            lst.busy = False
            if self.listens.get(key) is not lst:
                return  # unlistened meanwhile
            fresh = not lst.known or lst.from_disk
            if ans.entry is not None:
                if (
                    fresh
                    or ans.entry.revision > lst.revision
                    or (
                        ans.entry.revision == lst.revision
                        and _served(ans.entry) != _served(lst.entry)
                    )
                ):  # newer, or the version that won the held revision (md5 sent)
                    self._deliver(lst, ans.entry, ans.entry.revision)
            elif (ans.deleted or ans.revision == 0) and (fresh or ans.revision > lst.revision):
                self._deliver(lst, None, ans.revision)
            elif ans.deleted and ans.revision == lst.revision and lst.entry is not None:
                self._deliver(lst, None, ans.revision)  # a delete won the held revision
            self._resolve_waiting(lst)
            if lst.want > lst.revision or lst.recheck:
                self._pull(lst)

        def failed(exc: BaseException) -> None:
            lst.busy = False
            if self.listens.get(key) is not lst:
                return
            if lst.known and lst.from_disk:
                return  # served from disk, said so already; a node that answers ends it
            if lst.known:  # the listeners keep what they have; resync/failover retries
                retry = self._retry_pull(lst)
                self.s._warn(
                    ("config-listen", self.s.server),
                    f"listening to {key} on {self.s.server} failed ({exc}); keeping revision "
                    f"{lst.revision}, "
                    + (
                        f"retrying in {retry:g}s (a change was announced)"
                        if retry
                        else f"retrying at the next resync ({CONFIG_RESYNC_INTERVAL:g}s) "
                        "or server switch"
                    ),
                )
                return
            if lst.saved is not None:
                self._serve_disk(lst, exc)
                return
            self._fail_first_listen(lst, exc)

        budget = timeout if timeout is not None else max(3.0, self.s.settings.attempt_timeout)
        self._read(key, fields, self.s._now + budget, answered, failed, "config_listen")

    def _serve_disk(self, lst: Listening, exc: BaseException) -> None:
        """A first listen no node answers: its listeners get the disk copy (logged)."""
        saved = lst.saved
        assert saved is not None
        self.s._note(
            "warning",
            "config from disk",
            "",
            lst.key,
            f"no meshreg server answers ({exc}); serving the disk cache copy (revision "
            f"{saved.revision}) until one does",
            f"no meshreg server answers ({exc}); serving their disk cache copies until one does",
            "listened data ids",
        )
        self._deliver(lst, saved, saved.revision, from_disk=True)
        self._resolve_waiting(lst)

    def _fail_first_listen(self, lst: Listening, exc: BaseException) -> None:
        """A first listen with nothing to serve: its callers get ``exc``; when a later
        listen may succeed (no node answered, or none was ready), their callbacks stay
        (``KEPT_LISTENER``), else a data id nobody listens to any more is dropped (its
        topic unsubscribed)."""
        kept = with_listener_kept(exc, KEPT_LISTENER)
        if kept.listener_kept:
            self._next_kept_listen = min(self._next_kept_listen, self.s._now + KEPT_LISTEN_RETRY)
        elif not lst.waiting and lst.listeners:  # a kept listener's later try refused for
            # good (the ACL, a bad name): said, and dropped (review60 F4)
            self.s._warn(("kept-listener", lst.key), f"listening to {lst.key} refused: {exc}; "
                         f"its {len(lst.listeners)} listener(s) are dropped")  # fmt: skip
            lst.listeners.clear()
        for reply_to, cb in lst.waiting:
            if kept.listener_kept and cb not in lst.listeners:
                lst.listeners.append(cb)
            self._out(Fail(reply_to, kept))
        lst.waiting.clear()
        if not lst.listeners:
            self._drop(lst)

    def _retry_pull(self, lst: Listening) -> float:
        """After a failed listen or pull: if a push announced a newer revision (or another
        version at the held one), pull it again after a pause (doubling, per data id);
        0 if nothing is wanted (the resync is the backstop)."""
        if not (lst.want > lst.revision or lst.recheck):
            return 0.0
        _, pause = self._pull_retry.get(lst.key, (0.0, PULL_RETRY_FIRST))
        self._pull_retry[lst.key] = (self.s._now + pause, min(PULL_RETRY_MAX, 2 * pause))
        return pause

    def _pull(self, lst: Listening) -> None:
        """Fetch the version a push announced (resolved for this client: its labels)."""
        key = lst.key
        lst.busy = True
        want = max(lst.want, lst.revision)
        lst.recheck = False

        def got(info: ConfigInfo) -> None:
            lst.busy = False
            if self.listens.get(key) is not lst:
                return
            if info.revision > lst.revision or (
                info.revision == lst.revision and _served(info) != _served(lst.entry)
            ):  # a newer revision, or the version that won the held one
                self._deliver(lst, info, info.revision)
            if lst.want > lst.revision or lst.recheck:
                self._pull(lst)
            else:
                self._pull_retry.pop(key, None)

        def failed(exc: BaseException) -> None:
            lst.busy = False
            if self.listens.get(key) is not lst:
                return
            if getattr(exc, "code", None) == ErrorCode.NOT_FOUND and want > lst.revision:
                self._deliver(lst, None, want)  # deleted meanwhile
                return
            lst.want = max(lst.want, want)
            retry = self._retry_pull(lst)
            self.s._warn(
                ("config-pull", self.s.server),
                f"could not fetch revision {want} of {key} from {self.s.server} ({exc}); "
                f"keeping revision {lst.revision}, retrying in {retry:g}s",
            )

        timeout = max(3.0, self.s.settings.attempt_timeout)
        fields = {**key_fields(key), "min_revision": want}
        self._read(key, fields, self.s._now + timeout, got, failed)

    def _deliver(
        self, lst: Listening, entry: ConfigInfo | None, revision: int, from_disk: bool = False
    ) -> None:
        """The listeners now hold ``entry`` at ``revision``: call them if what they are
        served changed, keep it on disk, and remember the revision as seen."""
        before = _served(lst.entry) if lst.known else ("", "never")
        lst.entry, lst.revision, lst.known = entry, revision, True
        if from_disk:
            self._from_disk += not lst.from_disk
            lst.from_disk = True
        else:
            if lst.from_disk:
                lst.from_disk = False
                self._from_disk -= 1
                server = self.s.server
                if not self.s._unnote(("config from disk",), lst.key):
                    again = f"live data again from {server}"
                    self.s._note("info", "config live again", server, lst.key, again,
                                 what="listened data ids")  # fmt: skip
            self.note(lst.key, revision)
            self._save(lst.key, entry, revision)
        if before != _served(entry):
            for cb in lst.listeners:
                self._out(CallConfigListener(cb, lst.content, revision))

    def _resolve_waiting(self, lst: Listening) -> None:
        for reply_to, cb in lst.waiting:
            if cb not in lst.listeners:  # the same callback twice: called once a change
                lst.listeners.append(cb)
            self._out(CallConfigListener(cb, lst.content, lst.revision))
            self._out(Complete(reply_to, lst.entry))
        lst.waiting.clear()

    def _unlisten(self, cmd: ConfigUnlisten) -> None:
        lst = self.listens.get(cmd.key)
        if lst is not None:
            lst.listeners = [
                cb for cb in lst.listeners if cmd.listener is not None and cb != cmd.listener
            ]
            if not lst.listeners and not lst.waiting:
                self._drop(lst)
                self.s.request(
                    "config_unlisten", key_fields(cmd.key), self.s.settings.attempt_timeout,
                    on_error=lambda exc: None,
                )  # fmt: skip
        self._out(Complete(cmd.reply_to, None))

    def _drop(self, lst: Listening) -> None:
        del self.listens[lst.key]
        self._from_disk -= lst.from_disk
        self._out(UnwatchConfigTopic(lst.key))
