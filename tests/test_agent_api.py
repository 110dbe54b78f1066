"""The engine API as an agent platform drives it (foryou.api): 200 async agents on the tiny world, each
reading its feed, posting, liking and following for several rounds, with one A/B experiment running.
Every agent's own actions must show in its next page."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from foryou.api import AgentPlatform
from foryou.timeline.engine import UnknownPost, UnknownUser

AGENTS, ROUNDS, PAGE = 200, 3, 30


@pytest.fixture()
def platform(tiny_world_dir, tmp_path):
    path = tmp_path / "world"
    shutil.copytree(tiny_world_dir, path)
    p = AgentPlatform.open(path, state=tmp_path / "state")
    yield p
    p.close()


def _agents(platform: AgentPlatform) -> list[str]:
    """The platform's ids of the first AGENTS users (string ids: the world's ints written as text)."""
    return [str(u) for u in platform.engine.user_ids[:AGENTS].tolist()]


def test_two_hundred_async_agents_see_their_own_actions(platform):
    agents = _agents(platform)
    buddy = {a: agents[(i + 1) % len(agents)] for i, a in enumerate(agents)}  # each agent follows the next one
    experiment = platform.create_experiment({"name": "agents", "arms": {
        "control": {}, "ucb": {"overrides": {"timeline": {"exploration": {"strategy": "ucb"}}}}}})
    posts: dict[str, list[str]] = {a: [] for a in agents}

    followed_hits: list[bool] = []

    async def agent(me: str) -> list[str]:
        problems, liked = [], None
        for r in range(ROUNDS):
            theirs = posts[buddy[me]][-1] if r > 0 and posts[buddy[me]] else None  # posted before this read
            feed = await platform.arecommend(me, num_results=PAGE)
            page = set(feed.post_ids)
            if liked is not None and liked in page:
                problems.append(f"{me} round {r}: liked post {liked} served again")
            if theirs is not None:
                followed_hits.append(theirs in page)
            if r == 0:
                await platform.afollow(me, buddy[me])
            own = [it for it in feed.items if it.post_id not in posts[me]]
            if own:
                liked = own[0].post_id
                await platform.arecord_interaction(me, liked, "like")
                await platform.arecord_interaction(me, own[-1].post_id, "dwell", dwell_time=12.5)
            await asyncio.sleep(0)  # let the others interleave between reading and writing
            new = await platform.aadd_content(f"post-{me}-{r}", me, topic=r % 8, length=40)
            posts[me].append(str(new))
        return problems

    async def run() -> list[str]:
        # rounds interleave: everyone posts in round r before anyone reads round r + 1 (a barrier per round
        # would make the check trivial; instead gather runs every agent concurrently, the check is per agent)
        results = await asyncio.gather(*(agent(a) for a in agents))
        return [p for ps in results for p in ps]

    problems = asyncio.run(run())
    assert not problems, (len(problems), problems[:10])
    # The followed agent's newest post is retrieved for every follower (a live follow is in-network at once,
    # FollowsHydrator) but ranked like any other candidate: a fresh post without engagement competes with
    # 20 fresh followee posts a round and out-of-network posts for 30 slots, so it reaches some pages only.
    assert len(followed_hits) > AGENTS and sum(followed_hits) / len(followed_hits) > 0.35, (
        sum(followed_hits), len(followed_hits))
    assert all(p == f"post-{a}-{r}" for a in agents for r, p in enumerate(posts[a]))
    results = platform.get_experiment_results(experiment.name)
    exposures = results["exposures"]
    assert set(exposures) == {"control", "ucb"}, exposures
    assert all(e["pages"] > 0 and e["users"] > 0 for e in exposures.values()), exposures
    assert sum(e["users"] for e in exposures.values()) == AGENTS  # every agent is in exactly one arm


def test_a_new_post_is_in_every_followers_next_page(platform):
    agents = _agents(platform)[:20]
    author = agents[0]
    for a in agents[1:]:
        platform.follow(a, author)
    post = platform.add_content("breaking-news", author)
    assert post == "breaking-news"
    reached = [a for a in agents[1:] if "breaking-news" in platform.recommend(a, num_results=PAGE).post_ids]
    assert len(reached) >= 0.75 * len(agents[1:]), reached  # retrieved for all; ranking decides (note above)
    platform.unfollow(agents[1], author)
    platform.record_interaction(agents[2], "breaking-news", "like")
    assert "breaking-news" not in platform.recommend(agents[2], num_results=PAGE).post_ids


def test_unknown_ids_and_duplicate_posts_are_clear_errors(platform):
    user = _agents(platform)[0]
    with pytest.raises(UnknownUser, match="unknown user nobody"):
        platform.recommend("nobody")
    with pytest.raises(UnknownPost, match="unknown post nothing"):
        platform.record_interaction(user, "nothing", "like")
    platform.add_content("once", user)
    with pytest.raises(ValueError, match="post once already exists"):
        platform.add_content("once", user)


def test_train_models_reloads_what_it_trained(platform):
    before = platform.engine.model_versions()["realgraph"]
    metrics = platform.train_models(only="realgraph", promote=True)  # forced: the gate's verdict is still recorded
    assert "realgraph" in metrics and metrics["models"]["realgraph"] != before, (before, metrics)
    assert len(metrics["verdicts"]) == 1 and metrics["verdicts"][0].startswith("realgraph v1"), metrics["verdicts"]
    assert platform.recommend(_agents(platform)[0]).items  # still serving
