"""`foryou eval --workers N`: the baselines fitted as Ray tasks on a local Ray cluster give exactly the numbers
of one process (each baseline is tuned, fitted and listed alone, from its own seed)."""

from __future__ import annotations

import json

import pytest

from foryou.eval.evaluator import evaluate

pytestmark = pytest.mark.slow
pytest.importorskip("ray", reason="Ray is not installed (pip install 'foryou[scale]')")


def test_baselines_as_ray_tasks_give_the_same_numbers(tiny_world_dir):
    kw = {"protocol": "temporal", "baselines": ("popularity", "recent_popularity", "item_knn", "ease", "als", "bpr"),
          "max_users": 60, "seed": 0, "oracle": False, "reps": 50}
    one = evaluate(tiny_world_dir, **kw)
    two = evaluate(tiny_world_dir, **kw, workers=2)
    assert set(two["methods"]) == set(one["methods"]) >= {"foryou", "ease", "bpr"}
    assert json.dumps(two["methods"], sort_keys=True) == json.dumps(one["methods"], sort_keys=True)
    assert _timeless(two["baselines"]) == _timeless(one["baselines"])  # every grid point's score, the choices


def _timeless(v):
    """The record without its timings (the only thing allowed to differ)."""
    if isinstance(v, dict):
        return {k: _timeless(x) for k, x in v.items() if k != "seconds"}
    return [_timeless(x) for x in v] if isinstance(v, list) else v
