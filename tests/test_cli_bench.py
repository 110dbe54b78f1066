"""`foryou bench import` finds the real datasets by their files under a data root the user names (no
machine's folder names assumed) and says clearly when they are missing; `foryou bench batch` renders
what foryou.bench.batch returns."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types
from pathlib import Path

import pytest
from test_cli import REPO, assert_one_line_error, foryou
from test_importers import write_movielens

from foryou.bench.offline import find_real_datasets
from foryou.cli import bench, main


@pytest.fixture(autouse=True)
def _no_log_file(monkeypatch):
    """In process, main() must not attach its log file to this pytest session's loggers."""
    monkeypatch.setattr("foryou.logs.configure", lambda *a, **k: None)


def test_real_datasets_are_found_by_their_files_whatever_their_folder_names(tmp_path):
    for folder, signature in (("my-lastfm", "user_artists.dat"), ("ml", "u.data"), ("other", "notes.txt")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / signature).write_text("")
    assert find_real_datasets(tmp_path) == {"lastfm": tmp_path / "my-lastfm", "movielens": tmp_path / "ml"}
    assert find_real_datasets(tmp_path / "ml") == {"movielens": tmp_path / "ml"}  # the root itself counts


def test_bench_import_data_root_defaults_beside_the_repository():
    default = bench.DEFAULT_DATA
    assert default == REPO.parent / "shared" / "data"


def test_bench_import_says_when_the_data_is_missing(tmp_path, monkeypatch, capsys):
    assert_one_line_error(foryou("bench", "import", "--data", "nowhere", cwd=tmp_path),
                          "nowhere: no such directory; pass --data or set FORYOU_DATA")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(foryou("bench", "import", "--data", "empty", cwd=tmp_path),
                          "empty holds none of the real datasets")
    monkeypatch.setenv("FORYOU_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(SystemExit) as info:
        main(["bench", "import"])
    assert info.value.code == 1 and "elsewhere: no such directory" in capsys.readouterr().err


def test_bench_import_benches_what_it_finds_and_names_the_rest(tmp_path):
    write_movielens(tmp_path / "data" / "movies")
    r = foryou("bench", "import", "--data", "data", "--json", "i.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "i.json").read_text())
    assert list(result["datasets"]) == ["movielens"] and result["datasets"]["movielens"]["valid"]
    for name in ("minirecsys", "lastfm", "higgs"):
        assert f"not found under data: {name}" in r.stdout, r.stdout
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")]  # the scratch import is gone


def test_bench_batch_writes_and_renders_what_bench_batch_returns(monkeypatch, capsys, tmp_path, tiny_world_dir):
    calls = []

    def bench_batch(dataset: Path, users: int = 1000, n: int = 35, config=None, progress=None) -> dict:
        calls.append((dataset, users, n, config is not None))
        progress("pages", 1.0)
        return {"bench": "batch", "users": users, "speedup": 2.5, "per_user_ms": [1.0, 2.0]}

    fake = types.ModuleType("foryou.bench.batch")
    fake.__spec__ = importlib.machinery.ModuleSpec("foryou.bench.batch", None)
    fake.bench_batch = bench_batch  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "foryou.bench.batch", fake)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["bench", "batch", str(tiny_world_dir), "--users", "5", "--json", "b.json"])
    assert info.value.code == 0
    assert calls == [(tiny_world_dir, 5, 35, True)]
    assert json.loads((tmp_path / "b.json").read_text())["per_user_ms"] == [1.0, 2.0]
    out = capsys.readouterr().out
    assert "bench batch" in out and "speedup" in out and "2.5" in out and "per_user_ms" not in out


def test_bench_interactions_generates_imports_and_reports(tmp_path):
    r = foryou("bench", "interactions", "--rows", "20000", "--users", "500", "--items", "300", "--json", "i.json",
               cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "i.json").read_text())
    assert result["bench"] == "interactions" and result["rows"] == result["rows_read"] == 20000
    assert result["valid"] and result["bad_rows"] == 0 and result["kept"] is None
    assert result["counts"]["engagements"] == 20000 - result["duplicates"]
    assert 0 < result["counts"]["posts"] <= 300 and result["counts"]["users"] > 0
    for key in ("seconds", "import_s", "generate_s", "rows_per_s", "peak_rss_mb", "file_mb"):
        assert result[key] > 0, key
    assert result["machine"]["cpus"] and set(result["load_avg_1_5_15"]) == {"before", "after"}
    assert "bench interactions" in r.stdout and "rows_per_s" in r.stdout
