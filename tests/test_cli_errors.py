"""One rule for every mistake: exactly one `error: ` line on stderr, no box, no traceback; exit 2 when the
command line itself is wrong (typer/click usage errors), 1 for every other mistake a user can fix. A bug
keeps its traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError
from test_cli import assert_one_line_error, foryou

from foryou.cli import data as cli_data
from foryou.cli import main
from foryou.errors import ForYouError


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["timeline", "{w}", "7", "--n", "-5"], "'--n'"),
        (["timeline"], "Missing argument"),
        (["timeline", "{w}", "7", "--no-such-option"], "--no-such-option"),
        (["timeline", "{w}", "7", "--set", "timeline.no_such_key=1"], "'--set'"),
        (["timeline", "{w}", "7", "--set", "no-equals-sign"], "key=value"),
        (["timeline", "{w}", "7", "--set", "weights.like=nan"], "finite number"),  # every score would be nan
        (["timeline", "{w}", "7", "--set", "timeline.sources.uteg=100000000"], "less than or equal"),
        (["serve", "{w}", "--port", "99999"], "'--port'"),
        (["serve", "{w}", "--port", "-1"], "'--port'"),
        (["serve", "{w}", "--port", "0"], "'--port'"),
        (["quickstart", "--port", "70000", "--no-serve"], "'--port'"),
        (["no-such-command"], "No such command"),
    ],
)
def test_usage_errors_exit_2_in_one_line(tmp_path, tiny_world_dir, args, message):
    r = foryou(*(a.format(w=tiny_world_dir) for a in args), cwd=tmp_path)
    assert_one_line_error(r, message, code=2)
    assert "help" in r.stderr  # it says where the usage is


def test_no_arguments_shows_the_help(tmp_path):
    for args in ([], ["data"], ["models"], ["bench"]):
        r = foryou(*args, cwd=tmp_path)
        assert r.returncode == 0 and "Usage" in r.stdout and "error" not in r.stderr, (args, r.stderr)


def test_non_loopback_bind_without_token_is_one_line(tmp_path, tiny_world_dir):
    assert_one_line_error(foryou("serve", str(tiny_world_dir), "--host", "0.0.0.0", cwd=tmp_path), "--token")


def test_an_unwritable_event_store_is_one_line_before_workers_start(tmp_path, tiny_world_dir):
    (tmp_path / "a-file").write_text("not a directory")
    r = foryou("serve", str(tiny_world_dir), "--store", "a-file/events.sqlite", "--workers", "2", "--port", "8765",
               cwd=tmp_path)
    assert_one_line_error(r, "a-file/events.sqlite is not writable")


def test_truncated_parquet_stats_is_one_line(tmp_path, tiny_world_dir):
    shutil.copytree(tiny_world_dir, tmp_path / "w")
    f = tmp_path / "w" / "engagements.parquet"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    assert_one_line_error(foryou("data", "stats", "w", cwd=tmp_path), "engagements.parquet")
    r = foryou("data", "validate", "w", cwd=tmp_path)
    assert r.returncode == 1 and "✗ engagements: file engagements.parquet unreadable" in r.stdout, r.stdout


def test_validate_finds_bytes_flipped_in_the_middle_of_a_file(tmp_path, tiny_world_dir):
    """DuckDB alone reads this file without complaint (and `data stats` counts it as usual); validate
    decodes every column chunk and checks the page CRCs Dataset.write stores."""
    shutil.copytree(tiny_world_dir, tmp_path / "w")
    f = tmp_path / "w" / "users.parquet"
    data = bytearray(f.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    f.write_bytes(bytes(data))
    r = foryou("data", "validate", "w", cwd=tmp_path)
    assert r.returncode == 1, r.stdout
    assert any(ln.startswith("✗ users.") and "corrupt data in row group 0" in ln for ln in r.stdout.splitlines()), \
        r.stdout
    assert_one_line_error(r, "problem(s)")


def test_experiment_mistakes_are_one_line(tmp_path, tiny_world_dir):
    """The experiment store's refusals and a definition that does not validate are the user's mistakes
    where the experiments commands (and simulate --experiment) call it."""
    shutil.copytree(tiny_world_dir, tmp_path / "w", ignore=shutil.ignore_patterns(".serving", "models"))
    assert_one_line_error(foryou("experiments", "create", "w", "x", "--arm", "control", cwd=tmp_path),
                          "at least two arms")
    for args in (["experiments", "stop", "w", "nosuch"], ["experiments", "results", "w", "nosuch"],
                 ["simulate", "w", "--experiment", "nosuch"]):
        assert_one_line_error(foryou(*args, cwd=tmp_path), "no experiment named 'nosuch'")


def test_not_a_dataset_versus_no_such_directory(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("not a dataset")
    for args in (["data", "stats"], ["data", "validate"], ["models", "list"], ["timeline", "{}", "1"],
                 ["train"], ["compact"], ["experiments", "list"], ["eval", "{}", "--report", "r"]):
        for where, message in (("folder", "folder is not a dataset (no manifest.json)"),
                               ("nowhere", "nowhere: no such directory")):
            argv = [a.format(where) for a in args] if "{}" in args else [*args, where]
            assert_one_line_error(foryou(*argv, cwd=tmp_path), message)


# -- in process: what main() treats as the user's mistake, and what as a bug ------------------------


@pytest.fixture(autouse=True)
def _no_log_file(monkeypatch, tmp_path):
    """In process, main() must not attach its log file to this pytest session's loggers (nor write one
    into the working tree)."""
    monkeypatch.setattr("foryou.logs.configure", lambda *a, **k: None)
    monkeypatch.chdir(tmp_path)


def _fake_stats(exc: BaseException):
    def raise_it(path: Path) -> None:
        raise exc

    return raise_it


class _Point(BaseModel):
    x: int


def _validation_error() -> ValidationError:
    try:
        _Point.model_validate({"x": "not a number"})
    except ValidationError as exc:
        return exc
    raise AssertionError("validated")


def test_a_foryou_error_is_one_line_exit_1(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli_data, "show_stats", _fake_stats(ForYouError("disk full\nsecond line")))
    with pytest.raises(SystemExit) as info:
        main(["data", "stats", str(tmp_path)])
    assert info.value.code == 1
    assert capsys.readouterr().err.strip() == "error: disk full"


@pytest.mark.parametrize("exc", [ValueError("boom"), KeyError("boom"), FileNotFoundError("boom"),
                                 _validation_error(), type("LibraryError", (ValueError,), {})("boom")])
def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path, exc):
    """ValueError / KeyError / FileNotFoundError from deep inside are bugs, not 'user errors'; so are a
    pydantic ValidationError or a library's own ValueError subclass where no command expects them."""
    monkeypatch.setattr(cli_data, "show_stats", _fake_stats(exc))
    with pytest.raises(type(exc)):
        main(["data", "stats", str(tmp_path)])


def test_permission_denied_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli_data, "show_stats", _fake_stats(PermissionError(13, "Permission denied", "/x/y")))
    with pytest.raises(SystemExit) as info:
        main(["data", "stats", str(tmp_path)])
    assert info.value.code == 1 and capsys.readouterr().err.strip() == "error: /x/y: Permission denied"
