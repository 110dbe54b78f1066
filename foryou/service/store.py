"""The durable event store: every accepted write, in order, in SQLite (WAL, synchronous=FULL).

Why SQLite rather than DuckDB: the workload is many small appends, each of which must be on disk
before the HTTP response, from one or more server processes at once. SQLite's WAL commit is one
append + fsync, its write lock is shared safely between processes, readers never block the writer,
and `PRAGMA data_version` tells a worker in microseconds whether another one committed. DuckDB is
built for analytical scans and takes a process-exclusive lock on its file. DuckDB still reads the
folded result: `foryou compact` turns the log into the dataset's Parquet tables.

Events are numbered (`seq`) in commit order; every worker applies them to its own real-time
overlay in that order, so all workers and every restart see the same state. `event_id` is the
idempotency key: a retried write with the same id is acknowledged again and stored once.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foryou.errors import ForYouError

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,            -- commit order (rowid)
    event_id TEXT NOT NULL UNIQUE,      -- idempotency key (client's, or the server's: ~random.counter)
    type TEXT NOT NULL,                 -- engagement | post | relation
    kind TEXT NOT NULL,                 -- engagement kind, post kind, or relation action
    user_id INTEGER NOT NULL,           -- who acted (the author for posts)
    post_id INTEGER,                    -- engagements and posts
    target_id INTEGER,                  -- relations: the other account
    t INTEGER NOT NULL,                 -- world time (Unix seconds) the event happened
    value REAL NOT NULL DEFAULT 1,
    body TEXT,                          -- posts: JSON of the post's columns
    accepted_at REAL NOT NULL           -- wall clock at commit (ingestion lag)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
COLUMNS = ("event_id", "type", "kind", "user_id", "post_id", "target_id", "t", "value", "body", "accepted_at")
INSERT = f"INSERT INTO events({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
# Server-assigned event ids: a per-process random part and a counter (cheaper than a uuid each, and
# they insert near the right edge of the unique index). "~" is outside the client id pattern, so a
# client id never collides with one and they skip the duplicate lookup.
SERVER_ID_PREFIX = "~"
log = logging.getLogger("foryou.service")


class StoreError(ForYouError):
    """The event store cannot be opened or written (read-only, disk full, I/O error); nothing was stored."""


def _not_writable(path: Path, exc: BaseException) -> StoreError:
    if not _cannot_write(exc):  # not the filesystem: e.g. "file is not a database"
        return StoreError(f"event store {path} cannot be opened: {exc}; pass another --store")
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return StoreError(f"event store {path} is not writable: {reason}; "
                      "check the directory's permissions or pass --store")


def _cannot_write(exc: BaseException) -> bool:
    """Whether a failed commit is the store's environment (disk full, I/O error, read-only, locked,
    corrupt) rather than a bug: those are answered "unavailable", bugs stay errors."""
    if isinstance(exc, sqlite3.OperationalError | OSError):
        return True
    # Corrupt or "not a database" (a plain DatabaseError; Integrity/Programming errors are bugs).
    return type(exc) is sqlite3.DatabaseError and (exc.sqlite_errorcode & 0xFF) == sqlite3.SQLITE_CORRUPT


def check_writable(path: str | Path) -> None:
    """Raise StoreError unless the event store at `path` can be opened and written (creating it,
    like the service would); starts nothing. For a clear error before server workers spawn."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(path)
        try:
            conn.executescript(SCHEMA)
            # A real write, rolled back: SQLite opens a write-protected file read-only without a word,
            # and even takes BEGIN IMMEDIATE on it; only a write fails.
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('check_writable', '')")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        finally:
            conn.close()
    except (OSError, sqlite3.Error) as exc:
        raise _not_writable(path, exc) from None


def _connect(path: Path) -> sqlite3.Connection:
    c = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    try:
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=FULL")  # the commit's WAL append is fsynced before we acknowledge
        c.execute("PRAGMA wal_autocheckpoint=0")
        c.execute("PRAGMA busy_timeout=30000")
    except BaseException:
        c.close()
        raise
    return c


@dataclass
class _Pending:
    """One caller's events waiting for the group commit."""

    events: list
    done: threading.Event = field(default_factory=threading.Event)
    result: list = field(default_factory=list)
    error: BaseException | None = None


@dataclass
class Event:
    type: str
    kind: str
    user_id: int
    t: int
    post_id: int | None = None
    target_id: int | None = None
    value: float = 1.0
    body: dict[str, Any] | None = None
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    seq: int = 0
    accepted_at: float = 0.0

    def row(self) -> tuple:
        body = json.dumps(self.body, separators=(",", ":")) if self.body is not None else None
        return (self.event_id, self.type, self.kind, self.user_id, self.post_id, self.target_id, self.t,
                self.value, body, self.accepted_at)

    @classmethod
    def from_row(cls, r: Sequence[Any]) -> Event:
        seq, event_id, type_, kind, user_id, post_id, target_id, t, value, body, accepted_at = r
        return cls(type_, kind, user_id, t, post_id, target_id, value, json.loads(body) if body else None,
                   event_id, seq, accepted_at)


class GroupCommitStore:
    """What every event store shares: server-assigned event ids, the group commit (concurrent callers'
    events committed together by one thread, each caller acknowledged once its commit is durable) and
    `on_commit`. A store implements `_commit_group`, `since`, `data_version`, `meta`/`init_meta`."""

    path: Any  # where the events live (shown in logs and errors)

    def _start_committer(self) -> None:
        self._id_prefix = f"{SERVER_ID_PREFIX}{uuid.uuid4().hex[:12]}."  # per store opened: workers differ
        self._ids = itertools.count(1)
        self.on_commit: Callable[[list[Event]], None] | None = None  # called in commit order, after it is durable
        self._queue: list[_Pending] = []
        self._queue_cond = threading.Condition()
        self._closing = False
        self._committer = threading.Thread(target=self._commit_loop, name="event-store-commit", daemon=True)
        self._committer.start()

    store_id: str  # this store's history (`foryou compact` marks what it folded per store id)

    def _commit_group(self, groups: list[list[Event]]) -> list[list[tuple[Event, bool]]]:
        raise NotImplementedError

    def since(self, seq: int, limit: int = 50_000) -> list[Event]:
        """Stored events after `seq`, in order (at most `limit`)."""
        raise NotImplementedError

    def data_version(self) -> int:
        """Changes whenever anyone commits (a cheap "is there anything new?")."""
        raise NotImplementedError

    def event(self, seq: int) -> Event | None:
        raise NotImplementedError

    def last_seq(self) -> int:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def meta(self, key: str, default: str | None = None) -> str | None:
        raise NotImplementedError

    def init_meta(self, key: str, value: str) -> str:
        """Set `key` unless it is set (first writer wins across processes); return the stored value."""
        raise NotImplementedError

    def backup_bytes(self) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def new_event_id(self) -> str:
        """A server-assigned event id (for writes without a client id)."""
        return f"{self._id_prefix}{next(self._ids):x}"

    def append(self, events: Sequence[Event]) -> list[tuple[Event, bool]]:
        """Commit events durably, in order, in one transaction; returns (stored event, duplicate)
        per input once the commit is durable. A duplicate `event_id` returns the first stored event.
        Posts without an id get the next one in the commit, so concurrent workers never hand out the
        same id.

        Group commit: concurrent callers queue their events and one committer thread writes
        whatever is queued in a single transaction (one fsync for all of them); each caller waits
        for the commit that holds its events, then `on_commit` sees every fresh event of the group."""
        request = _Pending(list(events))
        with self._queue_cond:
            if self._closing:
                raise RuntimeError("event store is closed")
            self._queue.append(request)
            self._queue_cond.notify()
        request.done.wait()
        if request.error is not None:
            if _cannot_write(request.error):  # each caller gets its own exception (one per thread)
                raise StoreError(f"event store cannot write: {request.error}") from request.error
            raise request.error
        return request.result

    def _commit_loop(self) -> None:
        while True:
            with self._queue_cond:
                while not self._queue and not self._closing:
                    self._queue_cond.wait()
                if not self._queue:
                    return
                group, self._queue = self._queue, []
            try:
                results = self._commit_group([r.events for r in group])
            except BaseException as exc:  # nothing of the group was committed: every caller sees the error
                log.error("event store commit failed", extra={"store": str(self.path), "error": str(exc),
                                                              "events": sum(len(r.events) for r in group)})
                for r in group:
                    r.error = exc
                    r.done.set()
                continue
            for r, result in zip(group, results, strict=True):
                r.result = result
                r.done.set()
            if self.on_commit is not None:
                fresh = [e for result in results for e, duplicate in result if not duplicate]
                if fresh:
                    try:
                        self.on_commit(fresh)
                    except Exception:  # the reader's catch_up applies them instead
                        log.exception("on_commit failed")

    def _drain(self) -> None:
        """Stop taking writes; the committer commits what is queued, then exits."""
        with self._queue_cond:
            self._closing = True
            self._queue_cond.notify()
        self._committer.join(timeout=30)

    def iter_since(self, seq: int, upto: int | None = None) -> Iterator[Event]:
        while True:
            batch = self.since(seq)
            for e in batch:
                if upto is not None and e.seq > upto:
                    return
                yield e
            if not batch:
                return
            seq = batch[-1].seq


class EventStore(GroupCommitStore):
    """One SQLite file. Thread-safe (one lock per connection); several processes may share it."""

    def __init__(self, path: str | Path, base_post_id: int = 0):
        """Raises StoreError when the store cannot be created, opened or written."""
        self.path = Path(path)
        self._wlock, self._rlock = threading.Lock(), threading.Lock()
        conns: list[sqlite3.Connection] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conns.append(self._connect())
            conns.append(self._connect())
            self._write: sqlite3.Connection | None = conns[0]  # None after a failed rollback (see _rollback)
            self._read = conns[1]
            conns[0].executescript(SCHEMA)
            # Identifies this store's history (copies made by `foryou compact` keep it): the dataset
            # records, per store id, how far that store was folded into its tables.
            self.store_id: str = self.init_meta("store_id", uuid.uuid4().hex)
        except (OSError, sqlite3.Error) as exc:
            for c in conns:
                c.close()
            raise _not_writable(self.path, exc) from None
        self.base_post_id = int(base_post_id)
        self._stop = threading.Event()
        # Checkpoints run here, not inside a committing request (they would add fsyncs to its latency).
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="event-store-checkpoint",
                                              daemon=True)
        self._checkpointer.start()
        self._start_committer()

    def _connect(self) -> sqlite3.Connection:
        return _connect(self.path)

    def _writer(self) -> sqlite3.Connection:
        """The write connection (caller holds the write lock), reopened if a failed rollback closed it."""
        if self._write is None:
            self._write = self._connect()
        return self._write

    def _checkpoint_loop(self) -> None:
        conn = self._connect()
        try:
            while not self._stop.wait(1.0):
                with contextlib.suppress(sqlite3.OperationalError):  # busy: next round
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    # -- meta -------------------------------------------------------------------------------------

    def meta(self, key: str, default: str | None = None) -> str | None:
        with self._rlock:
            r = self._read.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return r[0] if r else default

    def init_meta(self, key: str, value: str) -> str:
        """Set `key` unless it is set (first writer wins across processes); return the stored value."""
        with self._wlock:
            self._writer().execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, value))
        return self.meta(key)  # type: ignore[return-value]

    # -- writes -----------------------------------------------------------------------------------

    def _commit_group(self, groups: list[list[Event]]) -> list[list[tuple[Event, bool]]]:
        now = time.time()
        assigned: list[Event] = []  # posts given an id here: undone if the commit fails
        with self._wlock:
            c = self._writer()
            c.execute("BEGIN IMMEDIATE")
            try:
                # Only client-chosen ids can repeat; server ids (`new_event_id`) are unique by construction.
                existing = self._existing(c, [e.event_id for g in groups for e in g
                                              if not e.event_id.startswith(SERVER_ID_PREFIX)])
                fresh: list[Event] = []
                in_batch: dict[str, Event] = {}
                next_post = None
                results = []
                for events in groups:
                    out: list[tuple[Event, bool]] = []
                    for e in events:
                        if e.event_id in existing:
                            out.append((existing[e.event_id], True))
                        elif e.event_id in in_batch:
                            out.append((in_batch[e.event_id], True))
                        else:
                            if e.type == "post" and e.post_id is None:
                                if next_post is None:
                                    r = c.execute("SELECT max(post_id) FROM events WHERE type = 'post'").fetchone()
                                    next_post = max(self.base_post_id, r[0] or 0) + 1
                                e.post_id, next_post = next_post, next_post + 1
                                assigned.append(e)
                            e.accepted_at = now
                            fresh.append(e)
                            in_batch[e.event_id] = e
                            out.append((e, False))
                    results.append(out)
                if fresh:
                    last = c.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
                    c.executemany(INSERT, [e.row() for e in fresh])
                    for i, e in enumerate(fresh):  # rowids are consecutive under the write lock
                        e.seq = last + 1 + i
                c.execute("COMMIT")
            except BaseException:
                for e in assigned:
                    e.post_id = None
                for e in (e for g in groups for e in g):
                    e.seq, e.accepted_at = 0, 0.0
                self._rollback(c)
                raise
        return results

    def _rollback(self, c: sqlite3.Connection) -> None:
        """Roll back a failed commit without masking its error: SQLite has often rolled back already
        (disk full, I/O error), and a ROLLBACK that fails leaves a connection we cannot trust, so it
        is closed and the next commit opens a new one (SQLite recovers the WAL)."""
        if not c.in_transaction:
            return
        try:
            c.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.error("event store rollback failed; reconnecting", extra={"store": str(self.path), "error": str(exc)})
            with contextlib.suppress(sqlite3.Error):
                c.close()
            self._write = None

    @staticmethod
    def _existing(c: sqlite3.Connection, ids: list[str]) -> dict[str, Event]:
        found: dict[str, Event] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            rows = c.execute(f"SELECT seq, {', '.join(COLUMNS)} FROM events "
                             f"WHERE event_id IN ({', '.join('?' * len(chunk))})", chunk).fetchall()
            found.update((r[1], Event.from_row(r)) for r in rows)
        return found

    # -- reads ------------------------------------------------------------------------------------

    def data_version(self) -> int:
        """Changes whenever another connection (this process's writer included) commits."""
        with self._rlock:
            return self._read.execute("PRAGMA data_version").fetchone()[0]

    def since(self, seq: int, limit: int = 50_000) -> list[Event]:
        with self._rlock:
            rows = self._read.execute(f"SELECT seq, {', '.join(COLUMNS)} FROM events WHERE seq > ? ORDER BY seq "
                                      "LIMIT ?", (seq, limit)).fetchall()
        return [Event.from_row(r) for r in rows]

    def event(self, seq: int) -> Event | None:
        with self._rlock:
            r = self._read.execute(f"SELECT seq, {', '.join(COLUMNS)} FROM events WHERE seq = ?", (seq,)).fetchone()
        return Event.from_row(r) if r else None

    def last_seq(self) -> int:
        with self._rlock:
            return self._read.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]

    def count(self) -> int:
        with self._rlock:
            return self._read.execute("SELECT count(*) FROM events").fetchone()[0]

    def backup_bytes(self) -> bytes:
        """A consistent copy of the whole database file (for compaction's atomic dataset swap)."""
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            dst = sqlite3.connect(Path(d) / "copy.sqlite")
            with self._rlock:
                self._read.backup(dst)
            dst.close()
            return (Path(d) / "copy.sqlite").read_bytes()

    def close(self) -> None:
        self._drain()
        self._stop.set()
        self._checkpointer.join(timeout=5)
        for c, lock in ((self._write, self._wlock), (self._read, self._rlock)):
            with lock:
                if c is not None:
                    c.close()
