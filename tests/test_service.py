"""The HTTP service in process (FastAPI TestClient) on copies of the tiny world: real-time adaptation
(one test per effect), cache, security, validation, durability of the store, replay and compaction."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from contract import service_client

from foryou.config import ForYouConfig
from foryou.service import cursor as cursors
from foryou.service.cache import ScoredCandidateCache
from foryou.service.service import Service, ServiceOptions
from foryou.timeline.query import TimelineQuery


def _copy(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".service"))
    return dst


@pytest.fixture(scope="module")
def world(tiny_world_dir, tmp_path_factory):
    return _copy(tiny_world_dir, tmp_path_factory.mktemp("svc") / "world")


@pytest.fixture(scope="module")
def client(world, tmp_path_factory):
    with service_client(world, tmp_path_factory.mktemp("trace")) as c:
        yield c


def svc_of(client) -> Service:
    return client.app.state.service


def active_user(svc: Service, k: int = 0) -> int:
    idx = svc.engine.state.index
    return int(idx.user_ids[np.argsort(-idx.follows.out_degree(), kind="stable")[k]])


def ids(page) -> list[int]:
    return [i["post_id"] for i in page["items"]]


def hydrate(svc: Service, user_id: int) -> TimelineQuery:
    e = svc.engine
    row = e.state.index.user_row(user_id)
    q = TimelineQuery(user_id=user_id, user_row=row, now=svc.clock() + 1, n=35)
    for h in e.pipeline.query_hydrators:
        q.features.update(h.hydrate(q))
    return q


# -- real-time adaptation ---------------------------------------------------------------------------


def test_like_keeps_the_post_off_the_next_page_and_updates_counters(client):
    svc = svc_of(client)
    u = active_user(svc, 0)
    page = client.get(f"/v1/users/{u}/timeline", params={"n": 10}).json()
    liked = page["items"][0]["post_id"]
    before = client.get(f"/v1/posts/{liked}").json()["counters"]
    r = client.post("/v1/engagements", json={"user_id": u, "post_id": liked, "kind": "like"})
    assert r.status_code == 200 and r.json()["accepted"] == 1
    again = client.get(f"/v1/users/{u}/timeline", params={"n": 10}).json()
    assert liked not in ids(again) and not again["cached"]  # (a), and the user's write invalidated the cache
    after = client.get(f"/v1/posts/{liked}").json()["counters"]
    assert after["like"] == before["like"] + 1  # (b) counters
    assert after["positives_24h"] == before["positives_24h"] + 1  # (b) velocity


def test_like_updates_velocity_features(client):
    svc = svc_of(client)
    u = active_user(svc, 1)
    post = int(svc.engine.state.index.post_id[-5])
    store = svc.engine.state.features
    row, urow = svc.engine.post_row(post), svc.engine.state.index.user_row(u)
    names = ("post_positive_log", "post_positive_24h_log")
    t = svc.clock() + 2
    before = store.compute(np.array([urow]), np.array([row]), t, names)[0]
    client.post("/v1/engagements", json={"user_id": u, "post_id": post, "kind": "repost"}).raise_for_status()
    after = store.compute(np.array([urow]), np.array([row]), t, names)[0]
    assert (after > before).all()


def test_like_adds_uteg_social_proof_for_followers(client):
    svc = svc_of(client)
    idx = svc.engine.state.index
    adj = idx.follows.adjacency
    follower_row = int(np.argmax(idx.follows.out_degree()))
    follower = int(idx.user_ids[follower_row])
    q = hydrate(svc, follower)
    liker_row = int(q.features["top_follows"][0])
    liker = int(idx.user_ids[liker_row])
    assert liker_row in adj.indices[adj.indptr[follower_row]:adj.indptr[follower_row + 1]]
    candidates = idx.recent_posts(svc.clock() - 40 * 3600, svc.clock())
    post = int(idx.post_id[np.setdiff1d(candidates, q.features["proof_posts"])[0]])
    client.post("/v1/engagements", json={"user_id": liker, "post_id": post, "kind": "like"}).raise_for_status()
    q2 = hydrate(svc, follower)
    row = svc.engine.post_row(post)
    assert row in q2.features["proof_posts"]
    assert (row, liker_row) in set(zip(*(a.tolist() for a in q2.features["proof_edges"]), strict=True))


def test_like_updates_the_posts_simclusters_vector(client):
    svc = svc_of(client)
    sc = svc.engine.state.simclusters
    liker = next(int(svc.engine.state.index.user_ids[r]) for r in range(len(sc.interested_in.indptr) - 1)
                 if sc.interested_in.indptr[r + 1] > sc.interested_in.indptr[r])
    row = len(svc.engine.state.index.post_id) - 9
    post = int(svc.engine.state.index.post_id[row])
    before = sc.post_vector(np.array([row])).toarray()
    client.post("/v1/engagements", json={"user_id": liker, "post_id": post, "kind": "like"}).raise_for_status()
    after = sc.post_vector(np.array([row])).toarray()
    assert after.sum() > before.sum()


def test_like_updates_realgraph_decayed_counts(client):
    svc = svc_of(client)
    e = svc.engine
    u = active_user(svc, 2)
    urow = e.state.index.user_row(u)
    row = len(e.state.index.post_id) - 13
    author = int(e.state.index.author_row[row])
    before = e.state.realgraph.features(urow, np.array([author]))
    client.post("/v1/engagements", json={"user_id": u, "post_id": int(e.state.index.post_id[row]), "kind": "like"}
                ).raise_for_status()
    after = e.state.realgraph.features(urow, np.array([author]))
    assert after[0, 1:].sum() > before[0, 1:].sum()


def test_new_post_by_a_followed_author_is_an_in_network_candidate_at_once(client):
    from foryou.timeline.sources import InNetworkSource

    svc = svc_of(client)
    u = active_user(svc, 3)
    client.get(f"/v1/users/{u}/timeline").raise_for_status()  # a cached page exists
    q = hydrate(svc, u)
    author = int(svc.engine.state.index.user_ids[q.features["top_follows"][0]])
    r = client.post("/v1/posts", json={"author_id": author, "topic": 1, "has_media": True})
    assert r.status_code == 200
    post = r.json()["post_id"]
    assert client.get(f"/v1/posts/{post}").json()["author_id"] == author
    q = hydrate(svc, u)
    fetched = InNetworkSource(svc.engine.state).fetch(q)
    assert post in fetched["post_id"].tolist()
    page = client.get(f"/v1/users/{u}/timeline", params={"n": 35}).json()
    assert not page["cached"]  # a followee's new post invalidates the cached candidates
    # and it can be engaged with straight away
    client.post("/v1/engagements", json={"user_id": u, "post_id": post, "kind": "like"}).raise_for_status()
    assert client.get(f"/v1/posts/{post}").json()["counters"]["like"] == 1


def test_unfollow_takes_effect_on_the_next_request(client):
    svc = svc_of(client)
    u = active_user(svc, 4)
    page = client.get(f"/v1/users/{u}/timeline", params={"n": 35}).json()
    author = next(i["author_id"] for i in page["items"] if i["in_network"])
    r = client.post("/v1/follows", json={"user_id": u, "target_id": author, "action": "unfollow"})
    assert r.status_code == 200
    again = client.get(f"/v1/users/{u}/timeline", params={"n": 35}).json()
    assert not [i for i in again["items"] if i["author_id"] == author and i["in_network"]]
    assert author not in svc.engine.state.index.user_ids[hydrate(svc, u).features["follows"]].tolist()
    client.post("/v1/follows", json={"user_id": u, "target_id": author, "action": "follow"}).raise_for_status()
    assert author in svc.engine.state.index.user_ids[hydrate(svc, u).features["follows"]].tolist()


@pytest.mark.parametrize("action", ["block", "mute"])
def test_block_and_mute_take_effect_on_the_next_request(client, action):
    svc = svc_of(client)
    u = active_user(svc, 5 if action == "block" else 6)
    page = client.get(f"/v1/users/{u}/timeline", params={"n": 35}).json()
    author = page["items"][0]["author_id"]
    client.post("/v1/follows", json={"user_id": u, "target_id": author, "action": action}).raise_for_status()
    again = client.get(f"/v1/users/{u}/timeline", params={"n": 35}).json()
    assert author not in [i["author_id"] for i in again["items"]]
    undo = "unblock" if action == "block" else "unmute"
    client.post("/v1/follows", json={"user_id": u, "target_id": author, "action": undo}).raise_for_status()
    assert svc.engine.state.index.user_row(author) not in hydrate(svc, u).features["blocked_authors"].tolist()


# -- cache and paging -------------------------------------------------------------------------------


def test_cache_serves_repeats_and_next_pages_without_repeats(client):
    svc = svc_of(client)
    u = active_user(svc, 7)
    first = client.get(f"/v1/users/{u}/timeline", params={"n": 10}).json()
    repeat = client.get(f"/v1/users/{u}/timeline", params={"n": 10}).json()
    assert repeat["cached"] and ids(repeat) == ids(first)
    second = client.get(f"/v1/users/{u}/timeline", params={"n": 10, "cursor": first["cursor"]}).json()
    assert second["cached"] and not set(ids(first)) & set(ids(second))
    assert cursors.decode(second["cursor"]) == set(ids(first)) | set(ids(second))
    # another user's write leaves this user's entry alone
    other = active_user(svc, 8)
    client.post("/v1/engagements", json={"user_id": other, "post_id": ids(first)[0], "kind": "click"})
    assert client.get(f"/v1/users/{u}/timeline", params={"n": 10}).json()["cached"]


def test_cache_ttl_zero_turns_it_off(world, tmp_path):
    path = _copy(world, tmp_path / "w")
    with service_client(path, tmp_path, cache_ttl_s=0) as c:
        u = active_user(svc_of(c), 0)
        c.get(f"/v1/users/{u}/timeline")
        assert not c.get(f"/v1/users/{u}/timeline").json()["cached"]


def test_a_page_ranked_before_the_users_last_event_is_never_served():
    """A miss that ranked before a write of its user, stored after the write's invalidation (a race), is
    not served: entries remember the last event applied when they were ranked."""
    cache = ScoredCandidateCache(ttl_s=60, max_users=10)
    cache.applied({7: 5})  # the user's event, seq 5, applied (nothing cached to drop yet)
    cache.put(7, ["stale"], False, None, 0, seq=4)  # ranked with the state before it, stored after
    assert cache.get(7) is None
    cache.put(7, ["fresh"], False, None, 0, seq=5)
    assert cache.get(7).items == ["fresh"]
    cache.applied({8: 6})  # another user's event leaves it alone
    assert cache.get(7) is not None


def test_the_default_page_size_is_the_configs(world, tmp_path):
    with service_client(world, tmp_path, config={"timeline": {"mixing": {"page_size": 7}}}) as c:
        u = active_user(svc_of(c), 0)
        assert len(c.get(f"/v1/users/{u}/timeline").json()["items"]) == 7
        assert len(c.get(f"/v1/users/{u}/timeline", params={"n": 9}).json()["items"]) == 9
        assert len(svc_of(c).timeline(u)["items"]) == 7


def test_cursor_round_trip_and_rejects_garbage():
    s = {1, 5, 7, 10**12, cursors.ID_MAX}
    assert cursors.decode(cursors.encode(s)) == s
    assert cursors.decode(None) == frozenset()
    for bad in ("zz", "v1.!!", "v1." + "_" * 20, "x" * 9000, cursors.encode({cursors.ID_MAX + 1})):
        with pytest.raises(cursors.BadCursor):
            cursors.decode(bad)


# -- validation and security ------------------------------------------------------------------------


def test_validation_errors(client):
    svc = svc_of(client)
    u = active_user(svc, 0)
    post = int(svc.engine.state.index.post_id[0])
    assert client.get("/v1/users/987654321/timeline").status_code == 404
    assert client.get("/v1/users/-1/timeline").status_code == 404  # any text may be a platform's id
    assert client.get("/v1/users/alice/timeline").status_code == 404
    assert client.get(f"/v1/users/{'x' * 129}/timeline").status_code == 422  # not an id at all
    for params in ({"n": 0}, {"n": 100000}, {"n": "x"}, {"cursor": "nonsense"}, {"explain": "maybe"}):
        assert client.get(f"/v1/users/{u}/timeline", params=params).status_code == 422, params
    assert client.get("/v1/posts/987654321").status_code == 404
    bad = [{"user_id": u, "post_id": post, "kind": "love"}, {"user_id": u, "post_id": post},
           {"user_id": u, "post_id": post, "kind": "like", "value": -1},
           {"user_id": u, "post_id": post, "kind": "like", "event_id": "../../etc"},
           {"user_id": u, "post_id": post, "kind": "like", "model": "x"}, {"events": []}]
    for body in bad:
        assert client.post("/v1/engagements", json=body).status_code == 422, body
    assert client.post("/v1/engagements", json={"user_id": u, "post_id": 987654321, "kind": "like"}
                       ).status_code == 404
    batch = {"events": [{"user_id": u, "post_id": post, "kind": "click"},
                        {"user_id": 987654321, "post_id": post, "kind": "click"}]}
    before = svc.store.count()
    assert client.post("/v1/engagements", json=batch).status_code == 404  # events[1]: unknown user
    assert svc.store.count() == before  # a batch is stored whole or not at all
    assert client.post("/v1/follows", json={"user_id": u, "target_id": u}).status_code == 409
    assert client.post("/v1/posts", json={"author_id": u, "kind": "reply"}).status_code == 422


def test_writes_need_the_token_when_configured(world, tmp_path):
    path = _copy(world, tmp_path / "w")
    with service_client(path, tmp_path, token="s3cret") as c:
        svc = svc_of(c)
        body = {"user_id": active_user(svc), "post_id": int(svc.engine.state.index.post_id[0]), "kind": "click"}
        assert c.post("/v1/engagements", json=body).status_code == 401
        assert c.post("/v1/engagements", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.post("/v1/engagements", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get(f"/v1/users/{body['user_id']}/timeline").status_code == 200  # reads stay open


def test_body_size_limit(world, tmp_path):
    path = _copy(world, tmp_path / "w")
    with service_client(path, tmp_path, max_body_bytes=2048) as c:
        svc = svc_of(c)
        e = {"user_id": active_user(svc), "post_id": int(svc.engine.state.index.post_id[0]), "kind": "click"}
        assert c.post("/v1/engagements", json={"events": [e] * 100}).status_code == 413
        assert c.post("/v1/engagements", json={"events": [e] * 2}).status_code == 200


def test_non_loopback_bind_needs_a_token():
    from foryou.service.security import check_bind

    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "t")
    with pytest.raises(ValueError, match="without a write token"):
        check_bind("0.0.0.0", None)


def test_ops_endpoints(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    text = client.get("/metrics").text
    for name in ("foryou_http_request_seconds_bucket", "foryou_pipeline_step_seconds_bucket", "foryou_candidates",
                 "foryou_ingestion_lag_seconds", "foryou_cache_requests_total", "foryou_events_total"):
        assert name in text
    assert 'route="/v1/users/{user_id}/timeline"' in text


# -- durability: idempotency, replay, compaction ------------------------------------------------------


def test_idempotent_writes_replay_on_restart_and_compaction(world, tmp_path):
    path = _copy(world, tmp_path / "w")
    cfg = ForYouConfig()
    opts = ServiceOptions(trace_log=tmp_path / "trace.jsonl")
    svc = Service(path, cfg, opts)
    u = active_user(svc)
    idx = svc.engine.state.index
    post = int(idx.post_id[-3])
    like = svc.engagement(u, post, "like", event_id="e-1")
    (stored, dup), = svc.write([like])
    assert not dup
    (again, dup), = svc.write([svc.engagement(u, post, "like", event_id="e-1")])
    assert dup and again.seq == stored.seq
    (new_post, _), = svc.write([svc.post_event(u, topic=2)])
    svc.write([svc.engagement(u, new_post.post_id, "reply"), svc.relation(u, int(idx.user_ids[0]) if
                                                                           int(idx.user_ids[0]) != u else
                                                                           int(idx.user_ids[1]), "mute")])
    counters = svc.post(post)["counters"]
    blocked = svc.user(u)["blocked_or_muted"]
    svc.close()

    svc = Service(path, cfg, opts)  # restart: the overlay is rebuilt from the store
    assert svc.post(post)["counters"] == counters
    assert svc.post(new_post.post_id)["counters"]["reply"] == 1
    assert svc.user(u)["blocked_or_muted"] == blocked
    svc.close()

    from foryou.data.dataset import Dataset
    from foryou.data.validate import validate_dir
    from foryou.service.compact import compact

    result = compact(path)
    assert result["posts"] == 1 and result["engagements"] == 2
    assert not validate_dir(path)
    ds = Dataset.load(path, validate=False)
    assert new_post.post_id in ds.posts["post_id"].to_pylist()
    svc = Service(path, cfg, opts)  # folded events are not applied twice; mutes still are
    assert svc.post(post)["counters"] == counters
    assert svc.post(new_post.post_id)["counters"]["reply"] == 1
    assert svc.user(u)["blocked_or_muted"] == blocked
    (next_post, _), = svc.write([svc.post_event(u)])
    assert next_post.post_id == new_post.post_id + 1
    svc.close()


def test_compact_refuses_while_a_server_runs(world, tmp_path):
    from foryou.service.compact import ServerRunning, compact

    path = _copy(world, tmp_path / "w")
    svc = Service(path, ForYouConfig(), ServiceOptions(trace_log=tmp_path / "trace.jsonl"))
    try:
        with pytest.raises(ServerRunning):
            compact(path)
    finally:
        svc.close()
