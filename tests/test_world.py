"""The synthetic world: determinism, structure, logging-policy propensities, ground truth."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from foryou.config import world_config
from foryou.data.dataset import Dataset
from foryou.data.validate import validate_dir
from foryou.data.world import GroundTruth, generate_world
from foryou.vocab import DAY


def test_same_seed_gives_identical_tables_and_other_seed_does_not(tiny_world):
    again = generate_world(world_config("tiny"), seed=1, preset="tiny")
    other = generate_world(world_config("tiny"), seed=2, preset="tiny")
    for name in tiny_world.dataset.tables:
        assert tiny_world.dataset[name].equals(again.dataset[name]), name
    assert tiny_world.dataset.manifest == again.dataset.manifest
    assert not tiny_world.dataset.posts.equals(other.dataset.posts)


def test_written_world_is_valid_and_loads(tiny_world_dir):
    assert validate_dir(tiny_world_dir) == []
    ds = Dataset.load(tiny_world_dir)
    m = ds.manifest
    assert m.source == "synthetic" and m.seed == 1 and m.preset == "tiny" and m.has_ground_truth
    assert m.counts == {name: t.num_rows for name, t in ds.tables.items()}
    assert m.split.train_end < m.split.valid_end
    assert m.time_range[0] < m.split.train_end and m.split.valid_end < m.time_range[1]


def test_world_has_every_head_reposts_replies_and_cold_start_users(tiny_world):
    ds = tiny_world.dataset
    kinds = set(ds.engagements["kind"].to_pylist())
    assert kinds == {"click", "like", "repost", "reply", "profile_click", "dwell", "follow_author",
                     "not_interested", "mute", "block", "report"}
    post_kinds = set(ds.posts["kind"].to_pylist())
    assert post_kinds == {"original", "reply", "repost"}
    followers = set(ds.follows["src_id"].to_pylist())
    assert len(set(ds.users["user_id"].to_pylist()) - followers) > 0  # some users follow nobody
    dwell = ds.engagements.filter(pc.equal(ds.engagements["kind"], "dwell"))["value"].to_numpy()
    assert dwell.min() >= 10.0  # the dwell head is P(dwell ≥ 10 s); value = seconds


def test_follow_graph_is_heavy_tailed_and_homophilous(tiny_world):
    ds, truth = tiny_world.dataset, tiny_world.truth
    n = ds.users.num_rows
    dst = ds.follows["dst_id"].to_numpy() - 1
    src = ds.follows["src_id"].to_numpy() - 1
    indeg = np.bincount(dst, minlength=n)
    assert indeg.max() >= 4 * max(np.median(indeg), 1)
    interests = truth.latent.interests
    # Follower's top interest equals the followee's top interest far more often than chance.
    same = (interests[src].argmax(1) == interests[dst].argmax(1)).mean()
    assert same > 2.0 / interests.shape[1]


def test_posts_follow_a_daily_rhythm(tiny_world):
    hours = (tiny_world.dataset.posts["created_at"].to_numpy() % DAY) // 3600
    counts = np.bincount(hours, minlength=24)
    assert counts[18:22].mean() > 2 * counts[2:5].mean()  # evening peak vs night


def test_impressions_are_real_and_never_own_posts(tiny_world):
    ds = tiny_world.dataset
    imp, posts = ds.impressions, ds.posts
    post_rows = imp["post_id"].to_numpy() - 1
    assert np.all(posts["author_id"].to_numpy()[post_rows] != imp["user_id"].to_numpy())
    assert np.all(posts["created_at"].to_numpy()[post_rows] <= imp["created_at"].to_numpy())
    assert np.all(posts["kind"].to_numpy(zero_copy_only=False)[post_rows] == "original")
    keys = imp["user_id"].to_numpy() * 10**7 + imp["post_id"].to_numpy()
    assert len(np.unique(keys)) == len(keys)  # a post is shown to a user at most once
    prop = imp["propensity"].to_numpy()
    assert np.all((prop > 0) & (prop <= 1))


def _window_posts(posts, t, window):
    created = posts["created_at"].to_numpy()
    original = posts["kind"].to_numpy(zero_copy_only=False) == "original"
    return original & (created >= t - window) & (created < t)


@pytest.mark.parametrize("route", ["global", "topic", "in_network"])
def test_stored_propensity_is_the_exact_logging_probability(route):
    """Single-route policies: recompute each shown post's probability by brute force."""
    shares = {"policy_global": 0.0, "policy_topic": 0.0, "policy_in_network": 0.0}
    shares[f"policy_{route}"] = 1.0
    cfg = world_config("tiny", n_users=120, n_posts=1500, days=4, **shares)
    world = generate_world(cfg, seed=3)
    ds, latent = world.dataset, world.truth.latent
    posts, imp, follows = ds.posts, ds.impressions, ds.follows
    window = int(cfg.window_hours * 3600)
    initial = follows.filter(pc.less(follows["created_at"], cfg.start_time))
    fsrc, fdst = initial["src_id"].to_numpy(), initial["dst_id"].to_numpy()
    authors, topics = posts["author_id"].to_numpy(), posts["topic"].to_numpy()
    k = cfg.n_topics
    rng = np.random.default_rng(0)
    for i in rng.choice(imp.num_rows, 150, replace=False):
        u, p = int(imp["user_id"][i].as_py()), int(imp["post_id"][i].as_py())
        t = imp["created_at"][i].as_py() - 6 * imp["position"][i].as_py()
        win = _window_posts(posts, t, window)
        n_win = win.sum()
        followees = fdst[fsrc == u]
        if route == "global" or (route == "in_network" and len(followees) == 0):
            expected = 1.0 / n_win
        elif route == "topic":
            tau = 0.5 * latent.interests[u - 1] + 0.5 / k
            per_topic = np.bincount(topics[win], minlength=k)
            empty_mass = tau[per_topic == 0].sum()
            expected = tau[topics[p - 1]] / per_topic[topics[p - 1]] + empty_mass / n_win
        else:
            per_author = np.array([(win & (authors == f)).sum() for f in followees])
            expected = (per_author == 0).mean() / n_win
            if authors[p - 1] in followees:
                expected += 1.0 / len(followees) / (win & (authors == authors[p - 1])).sum()
        assert imp["propensity"][i].as_py() == pytest.approx(expected, rel=1e-5), (route, i)


def test_truth_probabilities_are_bounded_and_zero_before_a_post_exists(tiny_world):
    truth, posts = tiny_world.truth, tiny_world.dataset.posts
    users = np.arange(1, 21)
    post_ids = posts["post_id"].to_numpy()[:20]
    created = posts["created_at"].to_numpy()[:20]
    after = truth.probabilities(users, post_ids, created + 3600)
    before = truth.probabilities(users, post_ids, created - 1)
    for head, p in after.items():
        assert np.all((p >= 0) & (p <= 1)), head
        assert np.all(before[head] == 0), head
    assert after["like"].max() > 0


def test_engagements_are_sampled_from_the_ground_truth(tiny_world):
    """Observed rates per head match the mean true probability over impressions (within 4 SE)."""
    ds, truth = tiny_world.dataset, tiny_world.truth
    imp = ds.impressions
    probs = truth.probabilities(imp["user_id"].to_numpy(), imp["post_id"].to_numpy(),
                                imp["created_at"].to_numpy())
    counts = dict(zip(*np.unique(ds.engagements["kind"].to_numpy(zero_copy_only=False), return_counts=True),
                      strict=True))
    for head in ("click", "like", "repost", "not_interested", "dwell"):
        p = probs[head].astype(np.float64)
        se = np.sqrt((p * (1 - p)).sum())
        assert abs(counts[head] - p.sum()) < 4 * se + 1, head


def test_engaged_posts_have_higher_true_probability_than_ignored_ones(tiny_world):
    ds, truth = tiny_world.dataset, tiny_world.truth
    e = ds.engagements.filter(pc.equal(ds.engagements["kind"], "like"))
    liked = truth.probabilities(e["user_id"].to_numpy(), e["post_id"].to_numpy(), e["created_at"].to_numpy())
    imp = ds.impressions
    shown = truth.probabilities(imp["user_id"].to_numpy(), imp["post_id"].to_numpy(), imp["created_at"].to_numpy())
    assert liked["like"].mean() > 2 * shown["like"].mean()


def test_utility_uses_x_weights(tiny_world):
    truth = tiny_world.truth
    zero = {h: np.zeros(1, np.float32) for h in ("click", "like", "repost", "reply", "profile_click", "dwell",
                                                  "follow_author", "not_interested", "mute", "block", "report")}
    assert truth.utility_from({**zero, "reply": np.ones(1)})[0] == pytest.approx(13.5)
    assert truth.utility_from({**zero, "report": np.ones(1)})[0] == pytest.approx(-369.0)
    assert truth.utility_from({**zero, "mute": np.ones(1), "block": np.ones(1)})[0] == pytest.approx(-74.0)


def test_oracle_timeline_is_the_best_eligible_page(tiny_world, tiny_world_dir):
    truth = GroundTruth.load(tiny_world_dir)
    posts = tiny_world.dataset.posts
    t = int(posts["created_at"].to_numpy().max())
    user = 7
    ids, util = truth.oracle_timeline(user, t, n=10)
    assert len(ids) == 10 and np.all(np.diff(util) <= 0)
    rows = ids - 1
    created = posts["created_at"].to_numpy()[rows]
    assert np.all(created <= t) and np.all(created > t - 48 * 3600)
    assert np.all(posts["author_id"].to_numpy()[rows] != user)
    eligible = truth.posts.post_id[truth.eligible_rows(user - 1, t)]
    all_util = truth.expected_utility(np.full(len(eligible), user), eligible, t)
    assert util[0] == pytest.approx(all_util.max())
    assert util.mean() > all_util.mean()


@pytest.mark.slow
def test_default_world_has_learnable_signal():
    world = generate_world(world_config("small"), seed=0, preset="small")
    signal = world.dataset.manifest.signal
    assert signal["best_over_mean_engagement"] >= 5
    counts = world.dataset.manifest.counts
    assert 1_500 <= counts["users"] <= 2_500 and 40_000 <= counts["posts"] <= 80_000
