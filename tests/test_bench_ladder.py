"""`foryou bench ladder` against a real server process: open-loop rungs, a fifth of them writes, and admission
control shedding with 503 (never errors, never a second of waiting) when the offered load is past what the
worker takes."""

from __future__ import annotations

import json
import shutil

import pytest

from foryou.bench.ladder import bench_ladder


@pytest.mark.slow
def test_an_overloaded_rung_is_shed_not_queued(tiny_world_dir, tmp_path):
    world = shutil.copytree(tiny_world_dir, tmp_path / "world", ignore=shutil.ignore_patterns(".service"))
    plot = tmp_path / "ladder.png"
    result = bench_ladder(world, [20.0, 400.0], seconds=2.0, workers=1, users=100, cache="miss", connections=64,
                          overrides=["service.max_pending=1"], plot=plot, writes=0.2)
    light, heavy = result["rungs"]
    assert light["offered_per_s"] == 20 and heavy["offered_per_s"] == 400
    for rung in (light, heavy):
        assert rung["sent"] > 0 and rung["errors"] == 0 and rung["lost"] == 0 and rung["over_1s"] == 0
    assert light["achieved_per_s"] > 10 and light["p99_ms"] is not None
    assert 0 < light["writes_answered"] <= light["writes"] < light["sent"]  # likes stored (200) beside the reads
    assert light["write_p99_ms"] is not None
    assert heavy["shed"] > 0 and 0 < heavy["shed_share"] < 1  # one slot: the rest answered 503 at once
    assert plot.stat().st_size > 10_000 and json.dumps(result)  # the plot, and a JSON-able result
