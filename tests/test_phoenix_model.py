"""Phoenix's nano trunk: candidate isolation, right-anchored positions, hashing, the retrieval towers."""

from __future__ import annotations

import torch

from foryou.models.phoenix import CandidateTower, PhoenixRanker, hash_rows

HEADS = ("like", "repost", "reply")
ACTIONS = 4
CONTEXT = 3


def _batch(b: int = 3, h: int = 6, m: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hist_post = torch.randint(0, 5_000, (b, h), generator=g)
    hist_post[0, :2] = -1  # the first user's history is shorter: left padding
    return {"user": torch.randint(0, 1_000, (b,), generator=g), "hist_post": hist_post,
            "hist_author": torch.randint(0, 300, (b, h), generator=g),
            "hist_topic": torch.randint(-1, 8, (b, h), generator=g),
            "hist_actions": torch.rand((b, h, ACTIONS), generator=g) < 0.4,
            "hist_dwell": torch.rand((b, h), generator=g) * 30, "hist_hours": torch.rand((b, h), generator=g) * 48,
            "cand_post": torch.randint(0, 5_000, (b, m), generator=g),
            "cand_author": torch.randint(0, 300, (b, m), generator=g),
            "cand_topic": torch.randint(-1, 8, (b, m), generator=g),
            "cand_context": torch.randn((b, m, CONTEXT), generator=g)}


def _model() -> PhoenixRanker:
    torch.manual_seed(0)
    return PhoenixRanker(HEADS, ACTIONS, CONTEXT, topics=8, post_buckets=10_000, author_buckets=1_000,
                         user_buckets=2_000).eval()


CANDIDATE_KEYS = ("cand_post", "cand_author", "cand_topic", "cand_context")


def test_a_candidates_score_depends_on_the_user_and_itself_only() -> None:
    model, x = _model(), _batch()
    with torch.no_grad():
        logits, dwell = model(**x)
        assert logits.shape == (3, 5, len(HEADS)) and dwell.shape == (3, 5)
        order = torch.tensor([4, 2, 0, 3, 1])  # the same candidates shuffled
        shuffled, _ = model(**{k: v[:, order] if k in CANDIDATE_KEYS else v for k, v in x.items()})
        torch.testing.assert_close(shuffled, logits[:, order], atol=1e-5, rtol=1e-5)
        alone, _ = model(**{k: v[:, 2:3] if k in CANDIDATE_KEYS else v for k, v in x.items()})  # the others removed
        torch.testing.assert_close(alone[:, 0], logits[:, 2], atol=1e-5, rtol=1e-5)


def test_positions_are_right_anchored_so_padding_changes_nothing() -> None:
    model, x = _model(), _batch()
    pad = {"hist_post": -1, "hist_author": 0, "hist_topic": -1, "hist_actions": False, "hist_dwell": 0.0,
           "hist_hours": 0.0}
    padded = dict(x)
    for key, fill in pad.items():  # three more empty slots on the left of every history
        v = x[key]
        padded[key] = torch.cat([torch.full((v.shape[0], 3, *v.shape[2:]), fill, dtype=v.dtype), v], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(**padded)[0], model(**x)[0], atol=1e-5, rtol=1e-5)
        ctx = {k: x[k] for k in ("user", *pad)}
        vec = model.user_vector(**ctx)
        torch.testing.assert_close(model.user_vector(**{k: padded[k] for k in ctx}), vec, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(vec.norm(dim=-1), torch.ones(3))


def test_the_history_and_its_order_move_the_scores() -> None:
    model, x = _model(), _batch()
    with torch.no_grad():
        base, _ = model(**x)
        flipped = {k: v.flip(1) if k.startswith("hist_") else v for k, v in x.items()}
        for k in ("hist_post", "hist_author", "hist_topic", "hist_actions", "hist_dwell", "hist_hours"):
            flipped[k][0] = x[k][0]  # user 0 unchanged: its padding stays on the left
        moved, _ = model(**flipped)
        torch.testing.assert_close(moved[0], base[0])
        assert (moved[1:] - base[1:]).abs().max() > 1e-4  # the same items in another order: other scores
        other = dict(x, hist_post=x["hist_post"].clone())
        other["hist_post"][1, -1] += 1  # a different newest item
        changed, _ = model(**other)
        assert (changed[1] - base[1]).abs().max() > 1e-4 and torch.equal(changed[2], base[2])


def test_hashing_is_deterministic_two_rows_and_zero_for_padding() -> None:
    ids = torch.tensor([[0, 1, 12345, -1]])
    rows = hash_rows(ids, 1_000)
    assert rows.shape == (1, 4, 2) and torch.equal(rows, hash_rows(ids, 1_000))
    assert (rows[0, :3] >= 1).all() and (rows[0, :3] < 1_000).all() and (rows[0, 3] == 0).all()
    assert (rows[0, :3, 0] != rows[0, :3, 1]).any()  # two different hashes


def test_the_candidate_tower_gives_unit_vectors_and_trains() -> None:
    torch.manual_seed(0)
    tower = CandidateTower(post_buckets=1_000, author_buckets=100)
    post, author = torch.arange(8), torch.arange(8) % 3
    v = tower(post, author)
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(8))
    v.sum().backward()
    assert tower.post.table.weight.grad is not None and tower.post.table.weight.grad.abs().sum() > 0
