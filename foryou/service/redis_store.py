"""The event store in Redis: the durable event log as a Redis Stream, for workers and replicas on several
machines (`foryou serve DATASET --state redis://HOST:PORT`). The SQLite store (`store.EventStore`) stays
the default; both share the group commit and the `Event` rows, so the service cannot tell them apart.

Durability: a write is acknowledged after Redis has appended it to its AOF with `appendfsync always`
(Redis fsyncs before it replies), so an acknowledged event survives `kill -9` of Redis. A Redis that does
not fsync every write is refused at start with one line saying how to start it. (Redis 7.2's `WAITAOF`
would allow `everysec` plus an explicit fsync wait; Debian 12 ships 7.0.)

Layout, under one prefix per dataset (`foryou:<state name>:`): `seq` (the last sequence number), `log`
(the stream; entry id `<seq>-0`, field `e` = the event's row as JSON, `p` = the id of a post numbered in
the commit), `ids` (client event id → seq: idempotency; server ids are unique by construction), `post`
(the last post id handed out), `meta` (a hash). One Lua script commits a group atomically: sequence
numbers, post ids and duplicate checks happen inside Redis, so any number of workers may write at once.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import orjson

from foryou.service.store import SERVER_ID_PREFIX, Event, GroupCommitStore, StoreError

log = logging.getLogger("foryou.service")
# KEYS: seq, ids, log, post. ARGV: per event its id, "1" to check the id for a duplicate, "1" when it is a
# post that needs an id, and its row (JSON). Returns {the last seq before the group, {index, seq} of each
# duplicate, {index, post id} of each post numbered}: fresh events take consecutive seqs (a short reply: a
# group of 1,000 likes answers three numbers).
_APPEND = """
local seq = tonumber(redis.call("GET", KEYS[1]) or "0")
local first, post, posts = seq, tonumber(redis.call("GET", KEYS[4]) or "0"), 0
local dups, numbered = {}, {}
for i = 1, #ARGV, 4 do
  local id, check, new_post, row = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local seen = false
  if check == "1" then seen = redis.call("HGET", KEYS[2], id) end
  if seen then
    dups[#dups + 1] = (i - 1) / 4
    dups[#dups + 1] = tonumber(seen)
  else
    seq = seq + 1
    if new_post == "1" then
      post, posts = post + 1, posts + 1
      redis.call("XADD", KEYS[3], seq .. "-0", "e", row, "p", tostring(post))
      numbered[#numbered + 1] = (i - 1) / 4
      numbered[#numbered + 1] = post
    else
      redis.call("XADD", KEYS[3], seq .. "-0", "e", row)
    end
    if check == "1" then redis.call("HSET", KEYS[2], id, seq) end
  end
end
redis.call("SET", KEYS[1], seq)
if posts > 0 then redis.call("SET", KEYS[4], post) end
return {first, dups, numbered}
"""


def redis_url(value: str) -> bool:
    return value.startswith(("redis://", "rediss://", "unix://"))


class RedisEventStore(GroupCommitStore):
    """The event log in Redis (module doc). Thread-safe: redis-py's client is a connection pool."""

    def __init__(self, url: str, namespace: str, base_post_id: int = 0):
        """Raises StoreError (one line) when Redis cannot be reached or does not fsync every write."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url, self._errors = url, redis.RedisError
        self.path = _public(url) + f" ({namespace})"
        # Reads retry once at once (a pooled connection from before a Redis restart fails first); the commit
        # never retries: a commit whose reply was lost may have been stored, and a retry would store it again.
        # redis-py's default (10 retries, exponential backoff) would also hold a write for seconds, not a 503.
        opts: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 2, "health_check_interval": 10}
        self.r: Any = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 1), **opts)  # (redis-py types: loose)
        self._w: Any = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **opts)
        self.prefix = p = f"foryou:{namespace}:"  # the shared scored-candidate cache lives under it too
        self._keys = {k: p + k for k in ("seq", "ids", "log", "post", "meta")}
        try:
            config = {**self.r.config_get("appendonly"), **self.r.config_get("appendfsync")}
            if (config.get("appendonly"), config.get("appendfsync")) != ("yes", "always"):
                raise StoreError(
                    f"redis at {_public(url)} does not fsync every write (appendonly={config.get('appendonly')}, "
                    f"appendfsync={config.get('appendfsync')}): an acknowledged event could be lost; start it with "
                    "--appendonly yes --appendfsync always")
            self._append = self._w.register_script(_APPEND)
            # Post ids continue after the dataset's (a counter below the base is raised to it).
            self.r.eval("local c = tonumber(redis.call('GET', KEYS[1]) or '0') "
                        "if c < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end return 0",
                        1, self._keys["post"], int(base_post_id))
            self.store_id: str = self.init_meta("store_id", uuid.uuid4().hex)
        except redis.RedisError as exc:
            self.r.close()
            self._w.close()
            raise StoreError(f"redis at {_public(url)} cannot be used as the event store: {exc}") from None
        self.base_post_id = int(base_post_id)
        self._version, self._down = 0, False
        self._start_committer()

    # -- meta -------------------------------------------------------------------------------------

    def meta(self, key: str, default: str | None = None) -> str | None:
        value = self.r.hget(self._keys["meta"], key)
        return default if value is None else value.decode()

    def init_meta(self, key: str, value: str) -> str:
        """Set `key` unless it is set (first writer wins across processes); return the stored value."""
        self.r.hsetnx(self._keys["meta"], key, value)
        return self.meta(key)  # type: ignore[return-value]

    # -- writes -----------------------------------------------------------------------------------

    def _commit_group(self, groups: list[list[Event]]) -> list[list[tuple[Event, bool]]]:
        now = time.time()
        events = [e for g in groups for e in g]
        args: list[Any] = []
        for e in events:
            e.accepted_at = now
            args += [e.event_id, "0" if e.event_id.startswith(SERVER_ID_PREFIX) else "1",
                     "1" if e.type == "post" and e.post_id is None else "0", _encode(e)]
        k = self._keys
        try:
            first, dups, numbered = self._append(keys=[k["seq"], k["ids"], k["log"], k["post"]], args=args)
        except self._errors as exc:  # not written (a script runs whole or not at all), nothing acknowledged
            for e in events:
                e.accepted_at = 0.0
            raise StoreError(f"redis at {_public(self.url)} cannot write: {exc}") from None
        duplicate_of = dict(zip(dups[::2], dups[1::2], strict=True))
        stored = {e.seq: e for e in self._range(min(duplicate_of.values()), max(duplicate_of.values()))} \
            if duplicate_of else {}
        posts = dict(zip(numbered[::2], numbered[1::2], strict=True))
        results, i, seq = [], 0, int(first)
        for g in groups:
            out: list[tuple[Event, bool]] = []
            for e in g:
                if i in duplicate_of:
                    out.append((stored[int(duplicate_of[i])], True))
                else:
                    seq += 1
                    e.seq = seq
                    if i in posts:
                        e.post_id = int(posts[i])
                    out.append((e, False))
                i += 1
            results.append(out)
        return results

    # -- reads ------------------------------------------------------------------------------------

    def data_version(self) -> int:
        """The last sequence number; when Redis cannot answer, the last one seen (reads keep serving)."""
        try:
            self._version = int(self.r.get(self._keys["seq"]) or 0)
        except self._errors as exc:
            self._unavailable(exc)
        else:
            if self._down:
                self._down = False
                log.info("redis available again", extra={"store": self.path})
        return self._version

    def _unavailable(self, exc: Exception) -> None:
        """Logged once per outage (every read asks), not once per read."""
        if not self._down:
            self._down = True
            log.warning("redis unavailable for reads", extra={"store": self.path, "error": str(exc)})

    def _range(self, lo: int, hi: int | str, count: int | None = None) -> list[Event]:
        entries = self.r.xrange(self._keys["log"], f"{lo}-0", f"{hi}-0" if isinstance(hi, int) else hi, count=count)
        return [_decode(int(eid.split(b"-")[0]), fields) for eid, fields in entries]

    def since(self, seq: int, limit: int = 50_000) -> list[Event]:
        try:
            return self._range(seq + 1, "+", limit)
        except self._errors as exc:  # the next read catches up
            self._unavailable(exc)
            return []

    def event(self, seq: int) -> Event | None:
        found = self._range(seq, seq)
        return found[0] if found else None

    def last_seq(self) -> int:
        return int(self.r.get(self._keys["seq"]) or 0)

    def count(self) -> int:
        return int(self.r.xlen(self._keys["log"]))

    def backup_bytes(self) -> bytes:
        raise StoreError("`foryou compact` folds a SQLite event store; a Redis one is folded by replaying it "
                         "(not supported yet)")

    def close(self) -> None:
        self._drain()
        self.r.close()
        self._w.close()


def _public(url: str) -> str:
    """The URL without its password (for logs and errors)."""
    head, at, tail = url.rpartition("@")
    return f"{head.split('://')[0]}://…@{tail}" if at else url


def _encode(e: Event) -> bytes:
    return orjson.dumps([e.event_id, e.type, e.kind, e.user_id, e.post_id, e.target_id, e.t, e.value, e.body,
                         e.accepted_at])


def _decode(seq: int, fields: dict[bytes, bytes]) -> Event:
    event_id, type_, kind, user_id, post_id, target_id, t, value, body, accepted_at = orjson.loads(fields[b"e"])
    if b"p" in fields:  # a post numbered in the commit
        post_id = int(fields[b"p"])
    return Event(type_, kind, user_id, t, post_id, target_id, value, body, event_id, seq, accepted_at)
