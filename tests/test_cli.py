"""The CLI as a user meets it: exit codes, one-line errors, no tracebacks.

Every run happens in a temporary directory with its log there too: the CLI's relative defaults
(runs/logs/foryou.jsonl, runs/logs/trace.jsonl, runs/...) never land in the working tree.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
PROGRESS = re.compile(r"^\[\s*\d+\.\d s\] ")  # the plain progress lines off a terminal


def foryou(*args: str, cwd: Path, columns: int = 120) -> subprocess.CompletedProcess:
    """`foryou ARGS` in a subprocess in `cwd` (a tmp dir, never the repository), with the code of this
    checkout, logging to cwd/log.jsonl."""
    assert not cwd.resolve().is_relative_to(REPO), f"{cwd}: CLI tests run outside the working tree"
    return subprocess.run([sys.executable, "-m", "foryou.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={"FORYOU_LOG": str(cwd / "log.jsonl"), "COLUMNS": str(columns),
                               "FORYOU_STATE_DIR": os.environ["FORYOU_STATE_DIR"],
                               "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, contains: str, code: int = 1) -> None:
    """Exactly one `error:` line, last on stderr, after nothing but progress lines; no traceback, no box."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout and "╭" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: ") and contains in lines[-1], result.stderr
    assert all(PROGRESS.match(ln) for ln in lines[:-1]), result.stderr


def test_every_command_has_help(tmp_path):
    for cmd in (["--help"], ["world", "--help"], ["quickstart", "--help"], ["import", "--help"],
                ["data", "validate", "--help"], ["data", "stats", "--help"], ["bench", "world", "--help"],
                ["bench", "import", "--help"], ["serve", "--help"], ["train", "--help"], ["models", "list", "--help"],
                ["simulate", "--help"], ["eval", "--help"], ["compact", "--help"], ["timeline", "--help"]):
        r = foryou(*cmd, cwd=tmp_path)
        assert r.returncode == 0 and "Usage" in r.stdout and not r.stderr, cmd


def test_world_then_validate_then_stats(tmp_path):
    r = foryou("world", "--preset", "tiny", "--seed", "1", "--out", "w", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "impressions" in r.stdout and "best_over_mean_engagement" in r.stdout
    r = foryou("data", "validate", "w", cwd=tmp_path)
    assert r.returncode == 0 and "valid" in r.stdout
    r = foryou("data", "stats", "w", cwd=tmp_path)
    assert r.returncode == 0 and "ctr" in r.stdout
    # a second build into the same place needs --force
    r = foryou("world", "--preset", "tiny", "--out", "w", cwd=tmp_path)
    assert_one_line_error(r, "--force")
    assert (tmp_path / "log.jsonl").read_text().count('"event": "world built"') == 1


def test_validate_lists_every_problem_and_fails(tmp_path):
    """Missing column, dangling author, negative timestamp, duplicated post id: one line each, exit 1."""
    assert foryou("world", "--preset", "tiny", "--seed", "1", "--out", "w", cwd=tmp_path).returncode == 0
    posts = pq.read_table(tmp_path / "w" / "posts.parquet")
    authors = posts["author_id"].to_numpy().copy()
    authors[0] = 999_999
    created = posts["created_at"].to_numpy().copy()
    created[1] = -5
    ids = posts["post_id"].to_numpy().copy()
    ids[3] = ids[2]
    posts = (posts.set_column(0, "post_id", pa.array(ids))
             .set_column(1, "author_id", pa.array(authors))
             .set_column(2, "created_at", pa.array(created))
             .drop_columns(["has_link"]))
    pq.write_table(posts, tmp_path / "w" / "posts.parquet")
    r = foryou("data", "validate", "w", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("✗")]
    for expected in ("posts.has_link", "posts.author_id", "posts.created_at", "posts.post_id"):
        assert sum(ln.startswith(f"✗ {expected}") for ln in lines) >= 1, (expected, r.stdout)
    assert "problem(s)" in r.stderr


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["world", "--preset", "huge", "--out", "x"], "unknown preset", 2),
        (["data", "validate", "nowhere"], "nowhere: no such directory", 1),
        (["data", "stats", "nowhere"], "nowhere: no such directory", 1),
        (["import", "lastfm", "nowhere", "--out", "x"], "not found", 1),
        (["import", "myspace", "nowhere", "--out", "x"], "unknown source", 2),
    ],
)
def test_user_mistakes_are_one_line(tmp_path, args, message, code):
    assert_one_line_error(foryou(*args, cwd=tmp_path), message, code)


def test_quickstart_builds_then_reuses_the_default_world(tmp_path):
    r = foryou("quickstart", "--preset", "tiny", "--out", "d", "--no-serve", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "signal" in r.stdout and "impressions" in r.stdout
    assert "For You · user" in r.stdout and "why post" in r.stdout  # ends with an explained page
    r = foryou("quickstart", "--preset", "tiny", "--out", "d", "--no-serve", cwd=tmp_path)
    assert r.returncode == 0 and "reusing" in r.stdout


def test_readme_documents_the_schema_and_importers_from_code():
    from foryou.data.importers import MAPPINGS
    from foryou.data.schema import markdown_reference

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert markdown_reference() in readme
    for mapping in MAPPINGS.values():
        assert mapping in readme
    assert "./dev run" in readme and "./dev test" in readme


def test_timeline_prints_the_page_explains_and_traces(tmp_path, tiny_world_dir):
    r = foryou("timeline", str(tiny_world_dir), "7", "--n", "10", "--explain", "--trace", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "For You · user 7 · 10 posts" in out
    assert "why post" in out and "utility Σ" in out and "final score" in out
    assert "filter" in out and "previously_seen" in out  # the trace lists every step
    assert "embedding_ann=not trained" in out  # no trained vectors yet: said so...
    assert "embedding_vectors_trained" in out  # ...and the trace shows the closed gate
    assert "heavy_ranker=missing: heuristic fallback" in out  # untrained: the documented fallback


def test_timeline_cold_start_and_mistakes(tmp_path, tiny_world, tiny_world_dir):
    follows = set(tiny_world.dataset.follows["src_id"].to_pylist())
    cold = next(u for u in tiny_world.dataset.users["user_id"].to_pylist() if u not in follows)
    r = foryou("timeline", str(tiny_world_dir), str(cold), cwd=tmp_path)
    assert r.returncode == 0 and "cold start" in r.stdout
    assert_one_line_error(foryou("timeline", str(tiny_world_dir), "99999999", cwd=tmp_path), "unknown user 99999999")
    # any string is an id: a word is an unknown user, not a usage error
    assert_one_line_error(foryou("timeline", str(tiny_world_dir), "seven", cwd=tmp_path), "unknown user seven")
    assert_one_line_error(foryou("timeline", "nowhere", "1", cwd=tmp_path), "no such directory")


def test_bench_timeline_writes_json(tmp_path, tiny_world_dir):
    r = foryou("bench", "timeline", str(tiny_world_dir), "--users", "30", "--json", "t.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    import json

    result = json.loads((tmp_path / "t.json").read_text())
    assert result["users"] == 30 and result["request_ms"]["p50"] > 0
    assert set(result["candidates_per_source_mean"]) >= {"in_network", "uteg", "simclusters", "trending"}
    assert "filter:previously_seen" in result["steps_ms"]


def test_train_then_models_list_show_promote_rollback(tmp_path, tiny_world_dir):
    import shutil

    shutil.copytree(tiny_world_dir, tmp_path / "w", ignore=shutil.ignore_patterns(".serving", "models"))
    args = ("--set", "training.heavy_ranker.epochs=1")
    r = foryou("train", "w", "--only", "heavy_ranker", "--promote", *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "heavy_ranker v1" in r.stdout and "ceiling AUC" in r.stdout
    assert foryou("train", "w", "--only", "heavy_ranker", "--promote", *args, cwd=tmp_path).returncode == 0  # v2
    r = foryou("models", "list", "w", cwd=tmp_path)
    assert r.returncode == 0 and "v1" in r.stdout and "v2" in r.stdout
    assert next(ln for ln in r.stdout.splitlines() if "heavy_ranker v2" in ln).split()[0] == "*"
    r = foryou("models", "show", "w", "heavy_ranker", cwd=tmp_path)
    assert r.returncode == 0 and '"version": 2' in r.stdout and "code_revision" in r.stdout
    r = foryou("models", "rollback", "w", "heavy_ranker", cwd=tmp_path)
    assert r.returncode == 0 and "heavy_ranker v1" in r.stdout
    r = foryou("timeline", "w", "7", "--trace", cwd=tmp_path)
    assert "heavy_ranker=v1 (promoted)" in r.stdout  # the trace output names the served version
    assert foryou("models", "promote", "w", "heavy_ranker", "2", cwd=tmp_path).returncode == 0
    assert_one_line_error(foryou("models", "promote", "w", "heavy_ranker", "9", cwd=tmp_path), "heavy_ranker")
    assert_one_line_error(foryou("models", "list", "nowhere", cwd=tmp_path), "no such directory")
    assert_one_line_error(foryou("train", "w", "--only", "nonsense", cwd=tmp_path), "unknown model", code=2)
    r = foryou("train", "w", "--only", "heavy_ranker", "--tune", "2", "--no-promote", *args, cwd=tmp_path)
    assert r.returncode == 0 and "best of 2 trials" in r.stdout, r.stderr
    assert "heavy_ranker v3" in r.stdout
