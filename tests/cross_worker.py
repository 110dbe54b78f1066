"""What the multi-worker tests share: a write through one worker is on the very next read through another."""

from __future__ import annotations

import httpx


def write_through_one_read_through_other(a: httpx.Client, b: httpx.Client, post: int = 11) -> int:
    """A like through `a` shows in `b`'s next read of the post, and a post created through `b` is known to `a`;
    returns the post's like count after the write."""
    before = b.get(f"/v1/posts/{post}").json()["counters"]
    a.post("/v1/engagements", json={"user_id": 6, "post_id": post, "kind": "like"}).raise_for_status()
    after = b.get(f"/v1/posts/{post}").json()["counters"]  # the very next read on the other worker
    assert after["like"] == before.get("like", 0) + 1
    created = b.post("/v1/posts", json={"author_id": 7}).json()["post_id"]
    assert a.get(f"/v1/posts/{created}").status_code == 200
    return int(after["like"])
