"""The config plane's group commit as a pipeline: turn N is fsynced while the loop serves N+1.

Theory of operation
-------------------
The config plane (runtime/config_plane.py) queues what one loop turn makes into a
:class:`Turn`: the versions to save and the pruned versions to delete (``ops``, in their
order), and the replicator's effects that must wait for them (replies, acks,
announcements).  At the end of the turn ``end_turn`` hands the turn's ops to a
**writer**; what the plane gets back from ``finished`` are turns whose ops are durable,
in turn order, and the plane carries out their effects then.  The rule: **a turn's
effects leave only after its own ops and those of every earlier turn are committed**
(a turn with no ops rides on the last turn in flight), so nothing derived from a
version - an ack, a reply, an announcement, a read that shows it - leaves before that
version is on disk.  Not acknowledgements, hence ``early``: a turn's **records** are
ready at ``end_turn``, while its versions are fsynced (the owner's fsync in parallel
with its peers', Raft thesis 10.2.1), except a ``saved`` record (a cluster whose
majority is 2: it tells the peer the owner's vote is on disk), which waits for the
versions of its data id saved so far, as a commit message does; a **commit message**
and a committed flag's announcement (``Persist(mark=True)``) wait only for the versions of
their data id saved so far, not for the flag's own fsync (a reply, in the flag's turn,
still does).

* :class:`ThreadWriter` (a node): one thread with the database's connection (the loop
  opened and loaded it, then never touches it again).  It takes every turn queued when
  it is free and commits them in ONE transaction (group commit across turns), then
  reports them done and writes a byte to ``wakeup_fd``, which the runtime polls with its
  sockets.  Meanwhile the loop goes on: registry traffic, reads of data ids with nothing
  in flight, the next config turn.
  **Adaptive**: a turn that finds nothing in flight and is small (``INLINE_MAX_VERSIONS``)
  is committed on the loop thread instead (``commit_pending``, after the turn's records
  left), by the same connection while the thread is idle: a handoff costs two thread
  wake-ups and the GIL passed back and forth (in a node process with the loop busy, each
  GIL wait is up to the switch interval), more than the commit itself on a fast disk
  (0.14 ms).  Bursts (something in flight) still go to the thread, which groups them.
  :class:`InlineChoice` makes the choice; two inline commits in a row slower than
  ``INLINE_SLOW`` (a slow disk: the loop stalled that long) send the next turns to the
  thread for ``INLINE_BACKOFF``.  A commit's time there excludes what the loop thread
  waited for a core meanwhile (runtime/run_queue): on a busy machine the thread would
  wait as long, and each handoff adds two wake-ups.
* :class:`WalCheckpointer` (with a :class:`ThreadWriter`): SQLite's default copies the
  WAL back into the database inside whichever commit takes the WAL past 1,000 pages:
  that commit then also writes about 4 MB into the database file and fsyncs it, on the
  writer thread (every commit queued behind it waits) or, for an inline commit, on the
  loop thread (a loop stall).  A probe on the 2-core VM (15 versions of 1.2 KB per
  commit, 250 commits/s, alternating runs): commits p99 2.2-2.9 ms, max 4.2-9.5 ms with
  it (max 44-93 ms on a busy machine); p99 0.9-1.3 ms, max 1.7-5.9 ms with the copies on
  a thread.  So the writer's connection does not checkpoint (``wal_autocheckpoint=0``):
  a thread of its own, with its own connection, copies the WAL ``PASSIVE``ly (never
  waiting for, nor blocking, a commit) at most every ``CHECKPOINT_INTERVAL`` after a
  commit; a WAL past ``WAL_TRUNCATE_BYTES`` (copies that never caught up with a steady
  stream of commits) is copied with ``TRUNCATE``, which waits for the commit in progress
  and holds the next ones until it is done.  (The WAL starts over from its first page
  only at a commit that finds it wholly copied, which a copy running beside a stream of
  commits often misses: in a 60 s probe at 250 commits/s the file reached 27 MB;
  ``WAL_KEEP_BYTES`` cuts it back when it starts over.)
* :class:`InlineWriter` (the simulation, the plane's tests, a node without a thread):
  commits in ``end_turn`` itself, on the caller's thread, so a seeded run replays.
* No database (``data_dir=""``): every turn is done at once.

**Unsaved data ids.**  ``unsaved`` maps a data id to the newest turn (current, in flight
or held) that saves a version of it: a read of it is held in that turn (``hold``), a
read that may show any data id (a list) in the newest turn with ops (``hold_any``); an
announcement skips a data id a later turn still holds (that turn announces it).

**Lazy marks.**  A peer's committed flag learnt from a commit message (``Persist(lazy=
True)``: nothing waits for it, and the protocol may lose the message anyway) is not a
transaction of its own: it waits in ``lazy`` and joins the next turn that writes anything
or has effects that wait for the disk (a relayed reply, say: whatever waited for this
node's disk before still waits for every flag raised before it), or, if none comes, a
turn of its own ``LAZY_MARK_SECONDS`` later (or once ``LAZY_MARK_MAX`` wait; at close,
drained).  One publish at a time cost each peer two transactions, the
record's and its flag's (each ~0.3 ms of CPU and a wake-up of the loop); now the flag
rides on the next record's.  A flag joins its turn's ops before any delete (``remove``),
so a pruned version's row is never written back; a crash loses at most the flags of the
last ``LAZY_MARK_SECONDS``, which anti-entropy brings back (digests carry the flag).

**Back-pressure.**  At most ``MAX_TURNS`` turns or ``MAX_VERSIONS`` versions in flight:
``end_turn`` then waits for the writer (the loop stalls as it did when it committed
itself); ``stats`` counts the waits and their time.

**Failure.**  A transaction that fails (an I/O error, a full disk) fails its turns and,
without trying them, every turn queued behind (the writer marks the generation failed),
so no later turn can be durable while an earlier one is not.  ``finished`` returns them
as failed, in order, after waiting for the rest of the turns in flight (they fail at
once).  The in-memory store still holds their versions (undoing them would touch the
replicator's state, and later turns may build on them), so the pipeline makes the disk
catch up instead: the failed turns' ops go, first and in order, into the current turn,
which is submitted again after ``RETRY_INTERVAL`` (the next turns wait in it, so the
order on disk stays the order of the turns), and their data ids stay unsaved until
then.  The plane answers the failed turns' writers and readers with an error and drops
their peer sends (records are sent again, the rest is repaired by anti-entropy); a
version is announced, acknowledged or shown only after the retry committed it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meshreg.configcenter.model import ConfigEntry, ConfigKey
from meshreg.configcenter.replication import Persist, SendCommit, SendRecord
from meshreg.configcenter.sqlite_store import BUSY_TIMEOUT, SqliteConfigStore, WriteOp
from meshreg.runtime.run_queue import RunQueueWait

log = logging.getLogger("meshreg.node")

MAX_TURNS = 64  # turns in flight (submitted, not yet done); more: end_turn waits
MAX_VERSIONS = 16_384  # versions in flight; more: end_turn waits (a slow disk)
GROUP_VERSIONS = 4_096  # the writer puts queued turns in one transaction up to this many
RETRY_INTERVAL = 0.1  # s; a failed commit is tried again (with what came since) this late
CLOSE_SECONDS = 10.0  # s; at close, what is in flight is waited for this long at most
SWITCH_INTERVAL = 0.0005  # s; the GIL switch interval of a node process (CPython: 5 ms).
# sqlite3 releases the GIL around each statement; taking it back waits until the loop
# thread blocks (a poll) or the interval forces a switch, so with a busy loop every
# statement of a commit waited up to 5 ms: an in-process test with a CPU-bound loop
# thread (10 versions a turn) gave 13-16 ms from submit to done at 5 ms, 2-4 ms at 0.5 ms.
# Process-wide: only a process that is a node sets it (NodeRuntime(avoid_full_gc=True)).
LAZY_MARK_SECONDS = 0.5  # s; a peer's committed flag waits this long at most for a turn
# that writes anyway (the next record's, 5 ms later at 200 publishes/s), then goes alone
LAZY_MARK_MAX = 4_096  # flags waiting at most (GROUP_VERSIONS); more: with the current turn
CHECKPOINT_INTERVAL = 0.25  # s; the WAL is copied into the database at most this often
# (only after a commit; each copy fsyncs the database file once)
WAL_TRUNCATE_BYTES = 64 << 20  # a WAL this big is copied with TRUNCATE (holds commits)
WAL_KEEP_BYTES = 16 << 20  # a WAL file bigger is cut back to this when the WAL starts over
INLINE_MAX_VERSIONS = 32  # versions (saved or deleted); a turn with nothing in flight and
# at most this many is committed on the loop thread (a few rows: the fsync is most of it)
INLINE_SLOW = 0.002  # s; inline commits this slow (the loop stalled: a slow disk) ...
INLINE_SLOW_IN_A_ROW = 2  # ... this many in a row (one alone is as often the loop thread
# preempted on a busy machine: 1% of inline commits on tmpfs at load 6, where the thread
# would not help) ...
INLINE_BACKOFF = 0.5  # s; ... send the next turns to the writer thread for this long
# (a disk slow for two commits is usually slow for the next few: a flush storm).  Measured
# (paired runs, change -> listener p50): with commits of 0.14 ms (tmpfs) inline won
# 0.5-1.8 ms; on a disk whose fsync p50 was 3.4 ms (shared) it lost 0.7-1.6 ms (the loop stalled
# through each fsync, where the thread lets it serve the next message): past a couple of
# ms the commit costs more than the handoff it saves

# (True: save, False: delete), the versions, and for a save, per version when this node
# shows it unacknowledged (``ConfigStore.arrival_settle``, taken on the loop thread; empty:
# a delete or a flag, whose row exists already)
Op = WriteOp  # (sqlite_store: save or delete, the versions, when each settles)


@dataclass(slots=True, eq=False)
class Turn:
    """One loop turn of the config plane: its disk ops and the effects that wait for
    them (carried out by the plane once ``finished`` returns the turn)."""

    seq: int
    ops: list[Op] = field(default_factory=list)
    effects: list[Any] = field(default_factory=list)
    early: list[Any] = field(default_factory=list)  # out at the end of the turn (no wait)
    keys: set[ConfigKey] = field(default_factory=set)  # data ids of the saved versions
    versions: int = 0  # saved or deleted
    gen: int = 0  # the pipeline's generation when submitted (failures bump it)
    submitted: float = 0.0  # time.monotonic() at submit (commit latency in stats)


@dataclass(frozen=True, slots=True)
class Done:
    seq: int
    error: BaseException | None  # None: durable


class CommitFailed(Exception):
    """A turn not tried because an earlier commit of its generation failed."""


class InlineChoice:
    """Whether a turn is committed on the loop thread or handed to the writer thread.

    Inline only when the writer is idle (nothing in flight: the turn then waits for no
    earlier one, and the connection is free), the turn is small, and the last inline
    commits were not slow (``in_a_row`` over ``slow``: the thread for ``backoff`` s, the
    loop must not stall on a slow disk).  Time is an argument (``now``, ``took``): the
    runtime passes its clock."""

    def __init__(
        self,
        max_versions: int = INLINE_MAX_VERSIONS,
        slow: float = INLINE_SLOW,
        backoff: float = INLINE_BACKOFF,
        in_a_row: int = INLINE_SLOW_IN_A_ROW,
    ) -> None:
        self.max_versions, self.slow, self.backoff = max_versions, slow, backoff
        self.in_a_row = in_a_row
        self._slow_run = 0  # slow inline commits in a row
        self._thread_until = -float("inf")  # after slow inline commits: the thread until
        self.inline = 0  # turns committed inline
        self.threaded = 0  # turns handed to the thread
        self.slow_commits = 0  # inline commits over ``slow``
        self.backoffs = 0  # times ``in_a_row`` of them sent the turns to the thread

    def choose(self, versions: int, idle: bool, now: float) -> bool:
        """True: commit this turn (``versions`` to write) inline; ``idle``: nothing in
        flight on the writer thread."""
        inline = idle and versions <= self.max_versions and now >= self._thread_until
        if inline:
            self.inline += 1
        else:
            self.threaded += 1
        return inline

    def took(self, seconds: float, now: float) -> None:
        """An inline commit took ``seconds``, ending at ``now``."""
        if seconds <= self.slow:
            self._slow_run = 0
            return
        self.slow_commits += 1
        self._slow_run += 1
        if self._slow_run >= self.in_a_row:
            self._slow_run = 0
            self.backoffs += 1
            self._thread_until = now + self.backoff


class InlineWriter:
    """Commits in ``submit`` itself, on the caller's thread (deterministic)."""

    wakeup_fd: int | None = None

    def __init__(self, db: Callable[[], SqliteConfigStore | None]) -> None:
        self._db = db  # read at each commit (a test may wrap the plane's database)
        self._done: deque[Done] = deque()
        self.transactions = 0

    def submit(self, turns: list[Turn]) -> None:
        db = self._db()
        error: BaseException | None = None
        try:
            assert db is not None
            db.write([op for t in turns for op in t.ops])
            self.transactions += 1
        except Exception as exc:
            error = exc
        self._done.extend(Done(t.seq, error) for t in turns)

    def take(self) -> list[Done]:
        done = list(self._done)
        self._done.clear()
        return done

    def wait(self, timeout: float) -> bool:
        return bool(self._done)

    def clear_wakeup(self) -> None:
        pass

    def close(self, timeout: float) -> bool:
        return True


class WalCheckpointer:
    """Copies the database's WAL into it on a thread and connection of its own (above),
    so that no commit pays for the copy."""

    def __init__(
        self,
        db: SqliteConfigStore,
        interval: float = CHECKPOINT_INTERVAL,
        truncate_bytes: int = WAL_TRUNCATE_BYTES,
    ) -> None:
        self._conn = sqlite3.connect(
            db.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA synchronous=FULL")
        self._wal = f"{db.path}-wal"
        self.interval, self.truncate_bytes = interval, truncate_bytes
        self._cv = threading.Condition()
        self._written = False  # a commit since the last copy
        self._closing = False
        self.checkpoints = 0
        self.truncates = 0
        self.errors = 0
        self.ms = [0.0, 0.0]  # sum, max
        self._thread = threading.Thread(target=self._run, name="meshreg-config-checkpoint",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def written(self) -> None:
        """A commit was made: copy the WAL soon."""
        with self._cv:
            if not self._written:
                self._written = True
                self._cv.notify_all()

    def close(self, timeout: float) -> bool:
        """Stop the thread (a copy in progress ends first) and close its connection; the
        writer's connection, closed last, copies the rest.  False: it did not stop."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            while True:
                with self._cv:
                    self._cv.wait_for(lambda: self._written or self._closing)
                    if self._closing:
                        return
                    self._written = False
                self.copy()
                with self._cv:  # at most one copy per interval, however many commits
                    if self._cv.wait_for(lambda: self._closing, self.interval):
                        return
        finally:
            self._conn.close()

    def copy(self) -> None:
        """One checkpoint: PASSIVE, or TRUNCATE once the WAL is past ``truncate_bytes``."""
        start = time.perf_counter()
        try:
            try:
                big = os.path.getsize(self._wal) > self.truncate_bytes
            except FileNotFoundError:
                big = False
            mode = "TRUNCATE" if big else "PASSIVE"
            self._conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except (sqlite3.Error, OSError) as exc:  # the next commit's copy tries again
            self.errors += 1
            if self.errors == 1 or self.errors % 1000 == 0:
                log.warning("configs: copying the WAL into %s failed (%d times): %s; "
                            "the WAL grows until a copy succeeds", self._wal[:-4],
                            self.errors, exc)  # fmt: skip
            return
        took = (time.perf_counter() - start) * 1000.0
        self.checkpoints += 1
        self.truncates += big
        self.ms[0] += took
        self.ms[1] = max(self.ms[1], took)


class ThreadWriter:
    """One thread that owns the database connection and commits queued turns (above)."""

    def __init__(self, db: SqliteConfigStore, inline: InlineChoice | None = None) -> None:
        """``inline``: small turns with nothing in flight are committed on the caller's
        thread (``commit_here``); None: every turn on the thread."""
        self._db = db
        self.inline = inline
        self.checkpointer = WalCheckpointer(db)
        db.defer_checkpoints(WAL_KEEP_BYTES)  # the checkpointer copies the WAL, no commit
        self._db_lock = threading.Lock()  # the connection: the thread or commit_here
        self._cv = threading.Condition()
        self._jobs: deque[Turn] = deque()
        self._done: deque[Done] = deque()
        self._failed_gen = -1
        self._closing = False
        self.transactions = 0
        self.write_ms = [0.0, 0.0]  # the transactions' time on this thread: sum, max
        self.wakeup_fd, self._wake_w = os.pipe()
        os.set_blocking(self.wakeup_fd, False)
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name="meshreg-config-writer",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def submit(self, turns: list[Turn]) -> None:
        with self._cv:
            self._jobs.extend(turns)
            self._cv.notify_all()

    def take(self) -> list[Done]:
        with self._cv:
            done = list(self._done)
            self._done.clear()
        return done

    def wait(self, timeout: float) -> bool:
        """Until a turn is done (True), or ``timeout`` s passed (False)."""
        with self._cv:
            return self._cv.wait_for(lambda: bool(self._done), timeout)

    def _write(self, turns: list[Turn]) -> BaseException | None:
        """``turns``' ops in one transaction, by whichever thread holds the connection;
        the error, if any, is reported to the loop (which retries)."""
        with self._db_lock:
            try:
                self._db.write([op for t in turns for op in t.ops])
            except Exception as exc:
                return exc
            self.transactions += 1
        self.checkpointer.written()
        return None

    def commit_here(self, turns: list[Turn]) -> None:
        """Commit ``turns`` on the caller's thread (the loop's, with nothing in flight:
        the thread is idle) and report them done, as the thread would, without the
        wake-up byte (the caller collects them at once)."""
        error = self._write(turns)
        with self._cv:
            if error is not None:
                self._failed_gen = max(self._failed_gen, *(t.gen for t in turns))
            self._done.extend(Done(t.seq, error) for t in turns)

    def clear_wakeup(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wakeup_fd, 4096):
                pass

    def close(self, timeout: float) -> bool:
        """Commit what is queued, then stop the thread and close the connection; False:
        the thread did not finish within ``timeout`` (a hung disk; it is a daemon)."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        for fd in (self.wakeup_fd, self._wake_w):
            os.close(fd)
        return True

    def _run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: bool(self._jobs) or self._closing)
                if not self._jobs:
                    break  # closing, and everything committed
                group: list[Turn] = []
                skipped: list[Turn] = []
                versions = 0
                while self._jobs and (not group or versions < GROUP_VERSIONS):
                    turn = self._jobs.popleft()
                    if turn.gen <= self._failed_gen:
                        skipped.append(turn)
                    else:
                        group.append(turn)
                        versions += turn.versions
            error: BaseException | None = None
            if group:
                start = time.perf_counter()
                error = self._write(group)
                took = (time.perf_counter() - start) * 1000.0
                self.write_ms[0] += took
                self.write_ms[1] = max(self.write_ms[1], took)
            with self._cv:
                if error is not None:
                    self._failed_gen = max(t.gen for t in group)
                self._done.extend(Done(t.seq, error) for t in group)
                self._done.extend(
                    Done(t.seq, CommitFailed("an earlier commit failed")) for t in skipped
                )
                self._cv.notify_all()
            with contextlib.suppress(BlockingIOError):  # full: the loop is woken already
                os.write(self._wake_w, b"\x01")
        self.checkpointer.close(CLOSE_SECONDS)  # first: the last connection closed copies
        self._db.close()  # the rest of the WAL into the database and removes it


def _never_waited() -> float:
    return 0.0


class CommitPipeline:
    """The turns of the config plane on their way to disk (see the module docstring)."""

    def __init__(
        self,
        db: Callable[[], SqliteConfigStore | None] | None,
        thread: bool,
        clock: Callable[[], float] = time.monotonic,
        settle_of: Callable[[ConfigEntry], float] | None = None,
        waited: Callable[[], float] | None = None,
    ) -> None:
        """``db``: the plane's database (None: in memory only); ``thread``: commit on a
        writer thread (the database then belongs to it; small turns with nothing in
        flight on the loop thread: ``InlineChoice``), else inline.  ``clock``: the
        commit latency in ``stats`` and the inline commits' duration (``InlineChoice``:
        only with a thread, never in the simulation).  ``settle_of``: when a version
        saved is shown unacknowledged (``ConfigStore.arrival_settle``), kept with it.
        ``waited``: seconds the calling thread has waited for a CPU, cumulative (with a
        thread, by default ``RunQueueWait``): not counted in an inline commit's duration."""
        self._settle_of = settle_of
        self._run_queue = RunQueueWait() if waited is None and thread and db is not None else None
        self._waited: Callable[[], float] = waited or self._run_queue or _never_waited
        self.writer: InlineWriter | ThreadWriter | None = None
        if db is not None:
            store = db()
            assert store is not None
            self.writer = ThreadWriter(store, InlineChoice()) if thread else InlineWriter(db)
        self.mode = "none" if db is None else "thread" if thread else "inline"
        self.turn = Turn(1)
        self.unsaved: dict[ConfigKey, Turn] = {}
        self._flight: deque[Turn] = deque()  # submitted, in order
        self._pending: Turn | None = None  # in _flight, to commit inline (commit_pending)
        self._flight_versions = 0
        self._ready: list[tuple[Turn, BaseException | None]] = []  # done, not yet returned
        self._done: dict[int, BaseException | None] = {}  # the writer's answers, by seq
        self._gen = 0
        self._retry_at: float | None = None  # a failed commit: the current turn waits
        # the disk is failing: (loop time of the first failure in a row, its error), until
        # a commit succeeds again (``failing``; the plane refuses writes meanwhile)
        self.failing: tuple[float, BaseException] | None = None
        self.failures_in_a_row = 0
        self._clock = clock
        self.lazy: list[ConfigEntry] = []  # peers' committed flags for a later transaction
        self._lazy_due: float | None = None  # ... written by then at the latest
        self.counters = {
            "commit_turns": 0,  # turns with disk ops committed
            "commit_failures": 0,  # turns whose commit failed (tried again)
            "commit_backpressure_waits": 0,  # end_turn waited for the writer (slow disk)
            "commit_backpressure_ms": 0.0,
            "commit_latency_ms_max": 0.0,  # submit -> done, as the loop sees it
            "commit_latency_ms_sum": 0.0,
        }

    # -- a turn ---------------------------------------------------------------------------
    def add(self, effects: list[Any]) -> None:
        """Effects of the current turn (a ``Persist`` also becomes a save op).  Most wait
        for the turn's commit; a record leaves at the end of the turn (``early``), a
        commit message and a committed flag's announcement once the versions they name
        are durable, without waiting for the flag's own fsync."""
        turn = self.turn
        for effect in effects:
            kind = type(effect)
            if kind is Persist:
                if effect.lazy and effect.mark and self.writer is not None:
                    self.lazy.extend(effect.entries)  # with a later turn's ops (end_turn)
                elif effect.entries:
                    self._save(turn, effect.entries, effect.mark)
                if effect.mark:
                    self._after_saved(effect, [e.key for e in effect.entries])
                    continue
            elif kind is SendRecord:
                if effect.saved:  # it says this node's save is durable: once it is
                    self._after_saved(effect, [effect.entry.key])
                else:
                    turn.early.append(effect)
                continue
            elif kind is SendCommit:
                self._after_saved(effect, [effect.key])
                continue
            turn.effects.append(effect)

    def _after_saved(self, effect: Any, keys: list[ConfigKey]) -> None:
        """``effect`` once every version of ``keys`` saved so far is durable: behind the
        newest turn that saves one (this one included), else at the end of this turn."""
        waits = [t for k in keys if (t := self.unsaved.get(k)) is not None]
        if waits:
            max(waits, key=lambda t: t.seq).effects.append(effect)
        else:
            self.turn.early.append(effect)

    def remove(self, entries: list[ConfigEntry]) -> None:
        """Pruned versions: deleted from disk after everything saved before (the flags
        waiting included: a flag written after its row's delete would bring it back)."""
        if entries:
            self._take_lazy(self.turn)
            self.turn.ops.append((False, tuple(entries), ()))
            self.turn.versions += len(entries)

    def hold(self, key: ConfigKey, reply: Any) -> bool:
        """Queue ``reply`` (a read showing ``key``) behind the turn that saves ``key``;
        False: nothing of ``key`` is on its way to disk (answer now)."""
        turn = self.unsaved.get(key)
        if turn is None:
            return False
        turn.effects.append(reply)
        return True

    def hold_any(self, reply: Any) -> bool:
        """Queue ``reply`` (a read that may show any data id) behind the newest turn with
        versions to save; False: none (answer now)."""
        if self.turn.keys or self._retry_at is not None:
            self.turn.effects.append(reply)
            return True
        for turn in reversed(self._flight):
            if turn.keys:
                turn.effects.append(reply)
                return True
        return False

    def idle(self) -> bool:
        """Nothing submitted and not yet done (the next turn's save would be alone)."""
        return not self._flight

    def busy(self) -> bool:
        """Something to submit, or to wait for."""
        t = self.turn
        return bool(t.effects or t.ops or t.early or self._flight or self._ready)

    def end_turn(self, now: float) -> None:
        """The loop turn ends: its early effects are ready at once; submit the current
        turn (or let it ride on the last one in flight); first wait for the writer if
        too much is in flight."""
        if self._pending is not None:  # not committed by its flush (should not happen)
            self.commit_pending(now)
        turn = self.turn
        if turn.early:  # records: they go while the turn's own versions are fsynced
            self._ready.append((Turn(turn.seq, effects=turn.early), None))
            turn.early = []
        if self.lazy:  # flags waiting: with a turn that writes or waits anyway, or when due
            if self._lazy_due is None:
                self._lazy_due = now + LAZY_MARK_SECONDS
            if turn.ops or turn.effects or now >= self._lazy_due or len(self.lazy) >= LAZY_MARK_MAX:
                self._take_lazy(turn)
        if self._retry_at is not None:
            if now < self._retry_at:
                return  # after a failure: this turn keeps gathering until the retry
            self._retry_at = None
        if not turn.ops and not turn.effects:
            return
        if self.writer is None or not turn.ops:
            self.turn = Turn(turn.seq + 1)
            if self._flight:  # behind what is in flight (it may show its versions)
                self._flight[-1].effects.extend(turn.effects)
            else:
                self._drop_unsaved(turn)
                self._ready.append((turn, None))
            return
        while self._flight and (
            len(self._flight) >= MAX_TURNS or self._flight_versions + turn.versions > MAX_VERSIONS
        ):
            start = self._clock()
            self.counters["commit_backpressure_waits"] += 1
            self.writer.wait(CLOSE_SECONDS)
            self.counters["commit_backpressure_ms"] += (self._clock() - start) * 1000.0
            self._collect(now)
            if self._retry_at is not None:  # a commit failed: its retry is in front of
                return  # this turn now, both submitted after RETRY_INTERVAL
        self.turn = Turn(turn.seq + 1)
        turn.gen = self._gen
        turn.submitted = self._clock()
        idle = not self._flight
        self._flight.append(turn)
        self._flight_versions += turn.versions
        writer = self.writer
        if (
            type(writer) is ThreadWriter
            and writer.inline is not None
            and writer.inline.choose(turn.versions, idle, turn.submitted)
        ):
            self._pending = turn  # committed by commit_pending, once the records left
            return
        writer.submit([turn])
        self._collect(now)

    def commit_pending(self, now: float) -> bool:
        """Commit, on this thread, the turn ``end_turn`` kept to commit inline (the caller
        first carried out what was ready: the turn's records are on their way to the
        peers while this fsyncs); True: a turn was committed (its effects are ready)."""
        turn, self._pending = self._pending, None
        if turn is None:
            return False
        writer = self.writer
        assert type(writer) is ThreadWriter and writer.inline is not None
        start = turn.submitted = self._clock()
        waited = self._waited()
        writer.commit_here([turn])
        end = self._clock()
        # the disk's time and the commit's own CPU, not the thread's wait for a core: a
        # busy machine is no reason for the writer thread (runtime/run_queue)
        writer.inline.took(end - start - (self._waited() - waited), end)
        self._collect(now)
        return True

    def retry_at(self) -> float | None:
        return self._retry_at

    def lazy_due(self) -> float | None:
        """When the flags waiting must be written (a loop turn then), or None: none wait."""
        return self._lazy_due if self.lazy else None

    def _take_lazy(self, turn: Turn) -> None:
        """The flags waiting join ``turn``'s ops, after what it saves so far."""
        if self.lazy:
            turn.ops.append((True, tuple(self.lazy), ()))
            turn.versions += len(self.lazy)
            self.lazy = []
        self._lazy_due = None

    def finished(self, now: float) -> list[tuple[Turn, BaseException | None]]:
        """Turns done, in order: (turn, None) durable, or (turn, error) failed."""
        self._collect(now)
        ready, self._ready = self._ready, []
        return ready

    def clear_wakeup(self) -> None:
        if self.writer is not None:
            self.writer.clear_wakeup()

    @property
    def wakeup_fd(self) -> int | None:
        return self.writer.wakeup_fd if self.writer is not None else None

    def close(self, now: float, drain: bool = True) -> list[tuple[Turn, BaseException | None]]:
        """Submit the current turn, wait for everything in flight (``CLOSE_SECONDS`` at
        most), stop the writer; returns the turns done (the plane carries them out).
        ``drain`` False (a crash in the simulation): the current turn is dropped, nothing
        is waited for or returned, as a SIGKILL would."""
        self._retry_at = None  # one last try of a failed commit
        if drain:
            self._take_lazy(self.turn)
            self.end_turn(now)
            self.commit_pending(now)
        self._pending = None  # (drain False, a crash: never committed)
        deadline = self._clock() + CLOSE_SECONDS
        while drain and self._flight and self.writer is not None:
            left = deadline - self._clock()
            if left <= 0 or not self.writer.wait(left):
                log.error(
                    "configs: closing with %d turns not committed (the disk does not "
                    "answer); their replies and acks are not sent",
                    len(self._flight),
                )
                break
            self._collect(now, retry=False)
        ready, self._ready = (self._ready if drain else []), []
        if self.writer is not None and not self.writer.close(max(deadline - self._clock(), 0.1)):
            log.error("configs: the database writer did not stop within %g s", CLOSE_SECONDS)
        self.writer = None
        if self._run_queue is not None:
            self._run_queue.close()
        return ready

    def stats(self) -> dict[str, Any]:
        c = self.counters
        return {
            "commit_mode": self.mode,
            "commit_transactions": self.writer.transactions if self.writer is not None else 0,
            **(
                {
                    "commit_write_ms_sum": round(self.writer.write_ms[0], 3),
                    "commit_write_ms_max": round(self.writer.write_ms[1], 3),
                    "commit_checkpoints": self.writer.checkpointer.checkpoints,
                    "commit_checkpoints_truncating": self.writer.checkpointer.truncates,
                    "commit_checkpoint_errors": self.writer.checkpointer.errors,
                    "commit_checkpoint_ms_sum": round(self.writer.checkpointer.ms[0], 3),
                    "commit_checkpoint_ms_max": round(self.writer.checkpointer.ms[1], 3),
                }
                if isinstance(self.writer, ThreadWriter)
                else {}
            ),  # fmt: skip
            **(
                {
                    "commit_inline": self.writer.inline.inline,
                    "commit_threaded": self.writer.inline.threaded,
                    "commit_inline_slow": self.writer.inline.slow_commits,
                    "commit_inline_backoffs": self.writer.inline.backoffs,
                }
                if isinstance(self.writer, ThreadWriter) and self.writer.inline is not None
                else {}
            ),  # fmt: skip
            "commit_failing": self.failing is not None,
            "commit_failures_in_a_row": self.failures_in_a_row,
            "commit_error": "" if self.failing is None else _error_text(self.failing[1]),
            "commit_marks_waiting": len(self.lazy),
            "commit_turns_in_flight": len(self._flight),
            "commit_versions_in_flight": self._flight_versions,
            **{k: round(v, 3) if type(v) is float else v for k, v in c.items()},
        }

    # -- internals ------------------------------------------------------------------------
    def _save(self, turn: Turn, entries: tuple[ConfigEntry, ...], mark: bool = False) -> None:
        turn.versions += len(entries)
        if mark:  # a committed flag: what waits for the data id waits for its versions
            turn.ops.append((True, entries, ()))
            return
        settle = self._settle_of
        turn.ops.append((True, entries, tuple(map(settle, entries)) if settle else ()))
        for e in entries:
            turn.keys.add(e.key)
            self.unsaved[e.key] = turn

    def _drop_unsaved(self, turn: Turn) -> None:
        unsaved = self.unsaved
        for key in turn.keys:
            if unsaved.get(key) is turn:
                del unsaved[key]

    def _collect(self, now: float, retry: bool = True) -> None:
        """Move the turns the writer finished into ``_ready``, in order."""
        if self.writer is None or not self._flight:
            return
        done = self._done
        done.update((d.seq, d.error) for d in self.writer.take())
        failed: list[Turn] = []
        while self._flight and (self._flight[0].seq in done or failed):
            if self._flight[0].seq not in done:  # behind a failure: they fail at once
                if not self.writer.wait(CLOSE_SECONDS):
                    break
                done.update((d.seq, d.error) for d in self.writer.take())
                continue
            turn = self._flight.popleft()
            self._flight_versions -= turn.versions
            latency = (self._clock() - turn.submitted) * 1000.0
            self.counters["commit_latency_ms_sum"] += latency
            self.counters["commit_latency_ms_max"] = max(
                self.counters["commit_latency_ms_max"], latency
            )
            error = done.pop(turn.seq)
            if failed and (error is None or isinstance(error, CommitFailed)):
                error = self._ready[-1][1]  # behind a failure: the same error
            if error is None:
                self.counters["commit_turns"] += 1
                self._drop_unsaved(turn)
                if turn.versions:  # (a turn of marks only proves little of a full disk)
                    self.failing, self.failures_in_a_row = None, 0
            else:
                self.counters["commit_failures"] += 1
                failed.append(turn)
                if not isinstance(error, CommitFailed):
                    self.failures_in_a_row += 1
                    self.failing = (self.failing[0] if self.failing else now, error)
            self._ready.append((turn, error))
        if failed and retry:
            self._gen += 1
            self._retry(failed, now)

    def _retry(self, failed: list[Turn], now: float) -> None:
        """The failed turns' ops go first into the current turn, which is submitted after
        ``RETRY_INTERVAL``; their data ids stay unsaved until then (module docstring)."""
        turn = self.turn
        ops = [op for t in failed for op in t.ops]
        turn.ops[:0] = ops
        turn.versions += sum(t.versions for t in failed)
        saved = tuple(e for save, entries, _ in ops if save for e in entries)
        if saved:
            turn.effects.insert(0, Persist(saved))  # announced once the retry committed
        for t in failed:
            turn.keys |= t.keys
            for key in t.keys:
                if self.unsaved.get(key) is t:
                    self.unsaved[key] = turn
        self._retry_at = now + RETRY_INTERVAL


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]
