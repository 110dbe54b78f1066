"""Dataset statistics on the tiny dataset of test_validate: exact counts, CTRs, degree percentiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_validate import TINY, write_tiny

from foryou.data.manifest import DatasetError
from foryou.data.stats import dataset_stats
from foryou.vocab import ENGAGEMENT_KINDS


def test_dataset_stats(tmp_path: Path) -> None:
    path = write_tiny(tmp_path / "tiny")
    s = dataset_stats(path)

    assert (s["name"], s["source"], s["positives_only"], s["signal"]) == (
        "tiny",
        "test",
        False,
        {"like": 0.5},
    )
    assert s["users"] == {"total": 4, "by_kind": {"person": 3, "catalog": 1}}
    assert s["posts"] == {"total": 6, "by_kind": {"original": 4, "reply": 1, "repost": 1}}
    assert s["follows"] == 6
    assert s["engagements"]["total"] == 6
    assert s["engagements"]["by_kind"] == {k: 0 for k in ENGAGEMENT_KINDS} | {
        "like": 2,
        "click": 1,
        "dwell": 1,
        "repost": 1,
        "reply": 1,
    }
    assert s["engaged_users"] == 3
    assert s["impressions"] == 8 and s["sessions"] == 4
    assert s["time_range"] == (100, 250)
    assert s["days"] == pytest.approx(150 / 86_400)
    assert s["ctr"]["like"] == pytest.approx(2 / 8)
    assert s["ctr"]["click"] == pytest.approx(1 / 8)
    assert s["ctr"]["block"] == 0

    users, follows = TINY["users"], TINY["follows"]
    persons = [u for u, k in zip(users["user_id"], users["kind"], strict=True) if k == "person"]
    out_deg = np.array([follows["src_id"].count(u) for u in persons])
    in_deg = np.array([follows["dst_id"].count(u) for u in users["user_id"]])
    for name, deg in (("out_degree", out_deg), ("in_degree", in_deg)):
        expected = {f"p{q}": np.percentile(deg, q) for q in (50, 90, 99)} | {"max": deg.max()}
        assert s[name] == pytest.approx(expected), name
    assert s["out_degree"]["max"] == 3


def test_ctr_none_without_impressions(tmp_path: Path) -> None:
    path = write_tiny(tmp_path / "tiny")
    file = path / "impressions.parquet"
    pq.write_table(pq.read_table(file).slice(0, 0), file)
    s = dataset_stats(path)
    assert s["impressions"] == 0 and s["sessions"] == 0
    assert set(s["ctr"].values()) == {None}


@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_truncated_file_is_a_dataset_error_naming_it(tmp_path: Path, cut: float) -> None:
    path = write_tiny(tmp_path / "tiny")
    file = path / "engagements.parquet"
    file.write_bytes(file.read_bytes()[: int(file.stat().st_size * cut)])
    with pytest.raises(DatasetError, match=r"engagements\.parquet"):
        dataset_stats(path)
