"""What every command parses and checks before it calls the library: the shared arguments and options,
`--set` overrides, dataset directories, the output a command may write to; and `UserError`, the one-line
mistake. A wrong value on the command line is a usage error (`bad`, exit 2); anything else the user can fix
is a `UserError` (exit 1)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from pydantic import ValidationError

from foryou.errors import ForYouError

if TYPE_CHECKING:
    from foryou.config import ForYouConfig, WorldPreset
    from foryou.data.manifest import Manifest

PRESETS = ("tiny", "small", "medium", "large")

# The arguments and options many commands share, spelled once so that their help reads the same everywhere.
DatasetArg = Annotated[Path, typer.Argument(help="dataset directory")]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="config override (repeatable)")]
JsonOption = Annotated[Path, typer.Option("--json", help="results file")]
StateOption = Annotated[Path | None, typer.Option(
    "--state-dir", help="models, serving snapshots, events and experiments of this dataset "
                        "[default: runs/state/NAME-HASH, or under $FORYOU_STATE_DIR]", show_default=False)]


class UserError(ForYouError):
    """A mistake the user can fix; shown as one line."""


def bad(param: str, message: str) -> typer.BadParameter:
    """A wrong value on the command line: a usage error (exit 2), like the ones typer raises itself."""
    return typer.BadParameter(message, param_hint=f"'{param}'")


@contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Around a library call that raises `kinds` (not ForYouError subclasses) on purpose for a user's mistake:
    each becomes a UserError with its message. Only here, so the same class raised elsewhere stays a bug."""
    try:
        yield
    except kinds as exc:
        raise UserError(validation_message(exc) if isinstance(exc, ValidationError) else str(exc)) from None


def check_preset(preset: str) -> WorldPreset:
    if preset not in PRESETS:
        raise bad("--preset", f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return cast("WorldPreset", preset)


def dataset_dir(dataset: Path) -> Path:
    """`dataset`, once it is one: "X: no such directory", "X is not a dataset (no manifest.json)" or what
    is wrong with its manifest is one `error:` line."""
    from foryou.data.manifest import read_manifest

    read_manifest(dataset)
    return dataset


def set_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """`--set key=value ...` as a nested dict; a pair without `=` is a usage error."""
    from foryou.config import parse_overrides

    try:
        return parse_overrides(pairs or [])
    except ValueError as exc:
        raise bad("--set", str(exc)) from None


def load_config(pairs: list[str] | None) -> ForYouConfig:
    """The config with `--set` overrides; an unknown key or a bad value is a usage error."""
    from foryou.config import ForYouConfig

    try:
        return ForYouConfig.model_validate(set_overrides(pairs))
    except ValidationError as exc:
        raise bad("--set", validation_message(exc)) from None


def validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


def existing_dataset(out: Path, force: bool) -> Manifest | None:
    """What `--out` holds before a command writes a dataset there: nothing (None: write away), or the
    manifest of a dataset (the caller decides whether it may replace it). A file, or a folder with other
    things in it, is never replaced, even with --force; nor is an unreadable dataset without --force."""
    from foryou.data.manifest import MANIFEST, DatasetError, Manifest, read_manifest

    if not out.exists():
        return None
    if not out.is_dir():
        raise UserError(f"{out} exists and is not a directory; choose another --out")
    if not (out / MANIFEST).exists():
        if any(out.iterdir()):
            raise UserError(f"{out} is not a dataset (no {MANIFEST}) and is not empty; choose another --out")
        return None
    try:
        return read_manifest(out)
    except DatasetError as exc:
        if not force:
            raise UserError(f"{exc}; pass --force to replace the dataset at {out}") from None
        # a stand-in, replaced below: callers read only its source, preset and seed
        return Manifest.model_construct(name=str(out), source="unreadable", generator="")  # type: ignore[call-arg]


def refuse_to_replace(out: Path, force: bool) -> None:
    """Commands writing a dataset never replace one silently: one `error:` line unless --force."""
    if existing_dataset(out, force) is not None and not force:
        raise UserError(f"{out} already holds a dataset; pass --force to replace it (its models, event "
                        "store and experiments go with it) or choose another --out")


def describe(m: Manifest) -> str:
    if m.source == "synthetic":
        return f"the {m.preset} world with seed {m.seed}"
    return f"{m.name}, source {m.source}"
