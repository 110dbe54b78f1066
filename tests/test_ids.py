"""External ids (foryou.data.ids): a dataset imported with string ids is served with them everywhere —
the engine, `foryou timeline DS alice`, the HTTP routes — and a post created with its own id over HTTP
keeps it across a restart."""

from __future__ import annotations

import numpy as np
import pytest
from contract import service_client
from typer.testing import CliRunner

from foryou.cli.main import app as cli
from foryou.data.ids import IdConflict, IdMap, IdSpace
from foryou.data.importers.interactions import import_interactions
from foryou.timeline.engine import RecommendationEngine, UnknownUser

PEOPLE = ["alice", "bob", "carol", "dave", "erin", "frank"]


def test_an_id_space_maps_both_ways_in_batches():
    space = IdSpace("user", np.array(["alice", "bob", "7"]), np.array([1, 2, 3]))
    assert space.one("alice") == 1 and space.one("7") == 3 and space.one(2) == 2  # an int is internal
    assert space.one("3") is None  # 3 has an external id ("7"): its digits do not name it
    assert space.one("1000") == 1000  # no external id (a catalog account): its digits do
    found, ids = space.internal(["bob", "nobody", 5, "alice"])
    assert found.tolist() == [True, False, True, True] and ids[[0, 2, 3]].tolist() == [2, 5, 1]
    assert space.json([1, 3, 1000]) == ["alice", "7", "1000"]
    space.add("zoe", 50)
    space.add("zoe", 50)  # a replay adds it again
    assert space.one("zoe") == 50 and space.json([50]) == ["zoe"]
    with pytest.raises(IdConflict):
        space.add("alice", 51)


def test_datasets_with_int_ids_map_nothing():
    ids = IdMap.load(None)
    assert ids.users.identity and ids.users.one("12") == 12 and ids.users.one("²") is None
    internal = np.arange(5)
    assert ids.posts.external(internal) is internal  # the hot path: no copy, no lookup
    ids.posts.add("agent-post", 99)  # a post with a string id on an int world
    assert ids.posts.json([98, 99]) == [98, "agent-post"] and ids.posts.one("agent-post") == 99


@pytest.fixture(scope="module")
def handles(tmp_path_factory):
    """A small dataset with string ids: six people post 60 items over two days and like each other's."""
    root = tmp_path_factory.mktemp("handles")
    rng = np.random.default_rng(3)
    t0 = 1_700_000_000
    items = ["item,author,created_at"] + [f"m{i:03d},{PEOPLE[i % 6]},{t0 + i * 2400}" for i in range(60)]
    (root / "items.csv").write_text("\n".join(items) + "\n")
    events = ["user,item,time"]
    for _ in range(400):
        i = int(rng.integers(0, 60))
        events.append(f"{PEOPLE[int(rng.integers(0, 6))]},m{i:03d},{t0 + i * 2400 + int(rng.integers(60, 20000))}")
    (root / "events.csv").write_text("\n".join(events) + "\n")
    (root / "follows.csv").write_text("src,dst\n" + "".join(f"{a},{b}\n" for a in PEOPLE for b in PEOPLE if a != b))
    out = root / "ds"
    import_interactions(root / "events.csv", out, user="user", item="item", time="time", items=root / "items.csv",
                        social=root / "follows.csv").write(out)
    return out


def test_the_engine_takes_and_the_page_shows_the_platforms_ids(handles):
    engine = RecommendationEngine.open(handles)
    try:
        page = engine.recommend("alice", n=10).shown(engine.ids)
        assert page.user_id == "alice" and page.items
        assert all(str(it.post_id).startswith("m") and it.author_id in PEOPLE for it in page.items)
        liked = page.items[0].post_id
        engine.record_interaction("alice", liked, "like")
        assert liked not in [it.post_id for it in engine.recommend("alice", n=10).shown(engine.ids).items]
        engine.relate("alice", "bob", "mute")
        assert "bob" not in [it.author_id for it in engine.recommend("alice", n=30).shown(engine.ids).items]
        pages = engine.recommend_many(["carol", "dave"], n=5)
        assert pages.lengths.tolist() == [5, 5]
        with pytest.raises(UnknownUser, match="unknown user mallory"):
            engine.recommend("mallory")
    finally:
        engine.close()


def test_the_cli_takes_a_handle(handles):
    runner = CliRunner()
    result = runner.invoke(cli, ["timeline", str(handles), "carol", "--n", "5"])
    assert result.exit_code == 0, result.output
    assert "user carol" in result.output and "m0" in result.output
    result = runner.invoke(cli, ["timeline", str(handles), "mallory"])
    assert result.exit_code != 0 and "unknown user mallory" in str(result.exception)


def test_http_routes_read_and_write_with_string_ids_and_a_new_post_survives_a_restart(handles, tmp_path):
    with service_client(handles, tmp_path) as client:
        page = client.get("/v1/users/alice/timeline", params={"n": 10}).json()
        assert page["user_id"] == "alice" and all(it["post_id"].startswith("m") for it in page["items"])
        assert all(it["author_id"] in PEOPLE for it in page["items"])
        post = page["items"][0]["post_id"]
        assert client.post("/v1/engagements", json={"user_id": "alice", "post_id": post, "kind": "like"}
                           ).status_code == 200
        assert client.get(f"/v1/posts/{post}").json()["counters"]["like"] >= 1
        assert client.post("/v1/engagements", json={"user_id": "alice", "post_id": "nope", "kind": "like"}
                           ).status_code == 404
        assert client.post("/v1/follows", json={"user_id": "erin", "target_id": "frank", "action": "unfollow"}
                           ).status_code == 200
        r = client.post("/v1/posts", json={"author_id": "bob", "post_id": "bob-says-hi", "length": 20})
        assert r.status_code == 200 and r.json()["post_id"] == "bob-says-hi", r.text
        assert client.post("/v1/posts", json={"author_id": "bob", "post_id": "bob-says-hi"}).status_code == 409
        assert client.get("/v1/posts/bob-says-hi").json()["author_id"] == "bob"
        assert client.get("/v1/users/bob").json()["user_id"] == "bob"
        assert client.get("/v1/experiments/assignments/bob").json()["user_id"] == "bob"
    with service_client(handles, tmp_path) as client:  # a restart: the event store is replayed
        view = client.get("/v1/posts/bob-says-hi")
        assert view.status_code == 200 and view.json()["author_id"] == "bob"
        like = {"user_id": "carol", "post_id": "bob-says-hi", "kind": "like"}
        assert client.post("/v1/engagements", json=like).status_code == 200
        assert client.get("/v1/posts/bob-says-hi").json()["counters"]["like"] == 1
        r = client.post("/v1/posts", json={"author_id": "dave", "post_id": "dave-2"})
        assert r.json()["post_id"] == "dave-2" and client.get("/v1/posts/dave-2").json()["author_id"] == "dave"
        assert client.post("/v1/posts", json={"author_id": "bob", "post_id": "bob-says-hi"}).status_code == 409
