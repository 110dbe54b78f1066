"""The event store under trouble, on copies of the tiny world: compaction marks that belong to the
store they were taken from (a `--store` after `foryou compact` loses nothing), a read-only store at
start (one clear StoreError), and a full disk (503 with the reason, nothing acked lost, writes work
again once there is space). The filesystem cases mount a tmpfs (tests run as root here and in CI;
root ignores permission bits, a read-only mount it cannot ignore) and skip where mounting is refused."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from contract import ContractClient
from test_cli import assert_one_line_error, foryou

from foryou.config import ForYouConfig
from foryou.service.app import ServeSettings, create_app
from foryou.service.compact import compact
from foryou.service.files import compacted_path, store_path
from foryou.service.service import Service, ServiceOptions, StoreUnavailable
from foryou.service.store import EventStore, StoreError, check_writable

CFG = ForYouConfig()


@pytest.fixture(scope="module")
def world(tiny_world_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("durability") / "world"
    shutil.copytree(tiny_world_dir, out, ignore=shutil.ignore_patterns(".service"))
    return out


def _copy(world: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(world, tmp_path / "w"))


def _service(path: Path, tmp_path: Path, store: Path | None = None) -> Service:
    return Service(path, CFG, ServiceOptions(trace_log=tmp_path / "trace.jsonl", store=store))


def _pick(svc: Service) -> tuple[int, int, int]:
    """An active user, a post they did not write, another account they do not follow."""
    idx = svc.engine.state.index
    user = int(idx.user_ids[np.argmax(idx.follows.out_degree())])
    row = idx.user_row(user)
    post = next(int(p) for p, a in zip(idx.post_id[::-1], idx.author_row[::-1], strict=True) if a != row)
    following = set(svc.engine.state.overlay.following_rows(row).tolist())
    other = next(int(u) for r, u in enumerate(idx.user_ids) if r != row and r not in following)
    return user, post, other


# -- compaction marks belong to their store -------------------------------------------------------


def test_custom_store_after_compaction_applies_its_writes_live_and_on_replay(world, tmp_path):
    path = _copy(world, tmp_path)
    svc = _service(path, tmp_path)
    user, post, other = _pick(svc)
    base_likes = svc.post(post)["counters"]["like"]
    base_following = svc.user(user)["following"]
    for i in range(5):  # the default store reaches seq 5; compaction folds it
        svc.write([svc.engagement(user, post, "impression", event_id=f"d-{i}")])
    svc.close()
    assert compact(path)["through_seq"] == 5

    custom = tmp_path / "custom.sqlite"  # a fresh store: its seqs start at 1, below the folded 5
    svc = _service(path, tmp_path, store=custom)
    assert svc.post(post)["counters"]["like"] == base_likes
    (like, dup), = svc.write([svc.engagement(user, post, "like", event_id="c-like")])
    assert not dup and like.seq == 1
    svc.write([svc.relation(user, other, "follow", event_id="c-follow")])
    assert svc.post(post)["counters"]["like"] == base_likes + 1  # live
    assert svc.user(user)["following"] == base_following + 1
    svc.close()

    svc = _service(path, tmp_path, store=custom)  # restart: replayed
    try:
        assert svc.post(post)["counters"]["like"] == base_likes + 1
        assert svc.user(user)["following"] == base_following + 1
    finally:
        svc.close()

    svc = _service(path, tmp_path)  # the default store's mark still holds: nothing applied twice
    try:
        assert svc.applied_seq == 5 and svc.post(post)["counters"]["like"] == base_likes
    finally:
        svc.close()


def test_compacting_a_custom_store_keeps_the_default_store_and_both_marks(world, tmp_path):
    path = _copy(world, tmp_path)
    svc = _service(path, tmp_path)
    user, post, _ = _pick(svc)
    base_likes = svc.post(post)["counters"]["like"]
    svc.write([svc.engagement(user, post, "impression", event_id="d-0")])
    svc.write([svc.engagement(user, post, "like", event_id="d-like")])  # default store, never folded
    svc.close()

    custom = path / ".service" / "alt.sqlite"  # inside the dataset: must survive the swap
    svc = _service(path, tmp_path, store=custom)
    svc.write([svc.engagement(user, post, "reply", event_id="c-reply")])
    replies = svc.post(post)["counters"]["reply"]
    svc.close()

    with pytest.raises(StoreError, match="no event store"):
        compact(path, store=tmp_path / "typo.sqlite")
    result = compact(path, store=custom)
    assert result["through_seq"] == 1 and result["engagements"] == 1
    marks = json.loads((path / ".service" / "compacted.json").read_text())["stores"]
    assert [m["seq"] for m in marks.values()] == [1]

    svc = _service(path, tmp_path, store=custom)  # folded: not applied twice
    try:
        assert svc.post(post)["counters"]["reply"] == replies
        svc.write([svc.engagement(user, post, "reply", event_id="c-reply-2")])  # seq 2: applied
        assert svc.post(post)["counters"]["reply"] == replies + 1
    finally:
        svc.close()
    svc = _service(path, tmp_path)  # the default store came along, unfolded: its like still counts
    try:
        assert svc.store.count() == 2 and svc.post(post)["counters"]["like"] == base_likes + 1
    finally:
        svc.close()
    compact(path)  # then folding the default store too keeps both marks
    marks = json.loads((path / ".service" / "compacted.json").read_text())["stores"]
    assert {m["store"]: m["seq"] for m in marks.values()} == {str(custom): 1, str(store_path(path)): 2}


def test_a_stale_copy_of_the_compacted_store_is_refused_not_skipped(world, tmp_path):
    path = _copy(world, tmp_path)
    svc = _service(path, tmp_path)
    user, post, _ = _pick(svc)
    svc.write([svc.engagement(user, post, "impression", event_id="d-0")])
    svc.close()
    stale = tmp_path / "stale.sqlite"
    shutil.copy(store_path(path), stale)  # same store id, one event
    svc = _service(path, tmp_path)
    svc.write([svc.engagement(user, post, "impression", event_id="d-1")])
    svc.close()
    compact(path)  # folded through seq 2; the copy's next write would be seq 2 as well
    with pytest.raises(StoreError, match="not the one compacted"):
        _service(path, tmp_path, store=stale)


def test_a_legacy_mark_applies_to_the_default_store_only(world, tmp_path):
    path = _copy(world, tmp_path)
    svc = _service(path, tmp_path)
    user, post, _ = _pick(svc)
    base = svc.post(post)["counters"]
    for i in range(3):
        svc.write([svc.engagement(user, post, "impression", event_id=f"d-{i}")])
    svc.close()
    compacted_path(path).parent.mkdir(parents=True, exist_ok=True)
    compacted_path(path).write_text(json.dumps({"seq": 3}))  # as the old `compact` wrote
    svc = _service(path, tmp_path, store=tmp_path / "custom.sqlite")
    try:
        svc.write([svc.engagement(user, post, "like", event_id="c-like")])
        assert svc.post(post)["counters"]["like"] == base["like"] + 1
    finally:
        svc.close()
    svc = _service(path, tmp_path)  # the default store: its 3 events count as folded (in the tables)
    try:
        assert svc.post(post)["counters"]["impressions"] == base["impressions"]
    finally:
        svc.close()


# -- the filesystem refuses -----------------------------------------------------------------------


@contextlib.contextmanager
def _mount(target: Path, *args: str) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount ({' '.join(args)}): {r.stderr.strip() or r.returncode}; needs root with "
                    "CAP_SYS_ADMIN (root ignores permission bits, so only a read-only or full filesystem tests this)")
    try:
        yield target
    finally:
        if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_a_read_only_store_is_one_clear_error_at_start(world, tmp_path):
    path = _copy(world, tmp_path)
    with _mount(tmp_path / "ro", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs") as ro:
        store = ro / "events.sqlite"
        with pytest.raises(StoreError) as exc:
            check_writable(store)
        assert f"event store {store} is not writable" in _one_line(exc) and "--store" in str(exc.value)
        with pytest.raises(StoreError) as exc:
            _service(path, tmp_path, store=store)
        assert f"event store {store} is not writable" in _one_line(exc)
        with pytest.raises(StoreError), ContractClient(create_app(ServeSettings(
                dataset=path, trace_log=tmp_path / "trace.jsonl", store=store))):
            pass
    # An existing store whose directory became read-only (a read-only bind mount over it).
    d = tmp_path / "existing"
    EventStore(d / "events.sqlite").close()
    with _mount(d, "--bind", str(d)):
        remount = subprocess.run(["mount", "-o", "remount,bind,ro", str(d)], capture_output=True, text=True)
        assert remount.returncode == 0, remount.stderr
        with pytest.raises(StoreError) as exc:
            _service(path, tmp_path, store=d / "events.sqlite")
        assert "is not writable" in _one_line(exc)
    svc = _service(path, tmp_path, store=d / "events.sqlite")  # writable again: starts
    svc.close()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_a_read_only_store_directory_is_one_error_line(world, tmp_path, workers):
    path = _copy(world, tmp_path)
    with _mount(tmp_path / "ro", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs") as ro:
        r = foryou("serve", str(path), "--store", str(ro / "events.sqlite"), "--workers", workers,
                   "--port", "8767", cwd=tmp_path)
        assert_one_line_error(r, f"event store {ro / 'events.sqlite'} is not writable")


def test_a_write_protected_store_file_is_one_clear_error_at_start(world, tmp_path):
    """SQLite opens a write-protected file read-only without complaint; the check must write."""
    path = _copy(world, tmp_path)
    store = tmp_path / "events.sqlite"
    EventStore(store).close()
    r = subprocess.run(["chattr", "+i", str(store)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"chattr +i is not available here: {r.stderr.strip() or r.returncode}")
    try:
        with pytest.raises(StoreError) as exc:
            check_writable(store)
        assert _one_line(exc).startswith(f"event store {store} is not writable: attempt to write a readonly")
        with pytest.raises(StoreError, match="is not writable"):
            _service(path, tmp_path, store=store)
    finally:
        subprocess.run(["chattr", "-i", str(store)], check=True)


def test_a_full_disk_answers_503_keeps_acked_writes_and_recovers(world, tmp_path):
    path = _copy(world, tmp_path)
    with _mount(tmp_path / "disk", "-t", "tmpfs", "-o", "size=1m", "tmpfs") as disk:
        filler = disk / "filler"
        filler.write_bytes(b"\0" * 256 * 1024)  # freed later: "space is available again"
        settings = ServeSettings(dataset=path, trace_log=tmp_path / "trace.jsonl", store=disk / "events.sqlite")
        acked: list[str] = []
        with ContractClient(create_app(settings)) as client:
            user, post, _ = _pick(client.app.state.service)
            before = client.get(f"/v1/posts/{post}").json()["counters"]["impressions"]

            def batch(tag: str, n: int = 300):
                events = [{"user_id": user, "post_id": post, "kind": "impression", "event_id": f"{tag}-{j}"}
                          for j in range(n)]
                return client.post("/v1/engagements", json={"events": events})

            for i in range(100):  # ~40 KB of store per batch: the 768 KB left fill in about 20
                r = batch(f"b{i}")
                if r.status_code != 200:
                    break
                acked += [e["event_id"] for e in r.json()["events"]]
            else:
                pytest.fail("the disk never filled")
            assert r.status_code == 503, r.text
            assert r.json()["detail"].startswith("event store cannot write: ")  # SQLite's reason follows
            assert acked
            assert client.get("/healthz").status_code == 200  # the process stays up, reads work
            assert client.get(f"/v1/posts/{post}").json()["counters"]["impressions"] == before + len(acked)
            assert client.get(f"/v1/users/{user}/timeline", params={"n": 5}).status_code == 200
            filler.unlink()
            r = batch("after", 50)  # space again: the same process writes
            assert r.status_code == 200, r.text
            acked += [e["event_id"] for e in r.json()["events"]]
        with ContractClient(create_app(settings)) as client:  # restart: every ack is there, nothing else
            store = client.app.state.service.store
            assert [e.event_id for e in store.iter_since(0)] == acked
            assert client.get(f"/v1/posts/{post}").json()["counters"]["impressions"] == before + len(acked)


def test_a_store_at_its_size_limit_answers_503_and_recovers(world, tmp_path):
    """SQLITE_FULL without a mount: the write connection's `max_page_count` caps the file where it
    is. SQLite has already rolled the transaction back, so a bare ROLLBACK would fail and hide the
    real error behind a 500."""
    path = _copy(world, tmp_path)
    settings = ServeSettings(dataset=path, trace_log=tmp_path / "trace.jsonl")
    with ContractClient(create_app(settings)) as client:
        svc = client.app.state.service
        user, post, _ = _pick(svc)
        body = {"events": [{"user_id": user, "post_id": post, "kind": "impression", "event_id": f"e-{j}"}
                           for j in range(200)]}
        with svc.store._wlock:
            pages = svc.store._write.execute("PRAGMA page_count").fetchone()[0]
            svc.store._write.execute(f"PRAGMA max_page_count = {pages}")
        r = client.post("/v1/engagements", json=body)
        assert r.status_code == 503 and r.json()["detail"] == "event store cannot write: database or disk is full"
        with pytest.raises(StoreUnavailable) as exc:  # the library's contract under the route
            svc.write([svc.engagement(user, post, "impression") for _ in range(200)])
        assert exc.value.status == 503 and isinstance(exc.value, StoreError)
        assert svc.store.count() == 0 and client.get("/healthz").status_code == 200
        with svc.store._wlock:
            svc.store._write.execute("PRAGMA max_page_count = 1073741823")
        r = client.post("/v1/engagements", json=body)
        assert r.status_code == 200 and r.json()["accepted"] == 200 and svc.store.count() == 200
