"""Model registry: versioned artifacts on disk, weights without pickle, promotion and rollback.

Layout under ``root`` (callers use ``<dataset>/models``)::

    root/<name>/v<N>/weights.safetensors   tensors only (safetensors; never pickle, never torch.load)
    root/<name>/v<N>/manifest.json         name, version, created (UTC), dataset fingerprint, config,
                                           metrics, code revision, input schema, model schema version,
                                           sha256 of the weights, extra
    root/<name>/promoted.json              {"version": N, "history": [previously promoted versions]}

A version directory is written under a temporary name and renamed into place, so a crash never leaves a
half-written version; ``promoted.json`` is replaced atomically. Every problem (missing, corrupt, written by
another model schema, trained on another input schema) raises :class:`RegistryError` with one readable line
and a ``kind`` ("corrupt", "unreadable", "incompatible", "missing", "invalid"); :meth:`ModelRegistry.load_or_fallback`
turns those into a status line for traces and never raises, and :meth:`ModelRegistry.list` / :meth:`ModelRegistry.show`
put the same line in :attr:`ModelVersion.status`, so a damaged model never reads as "not trained".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from foryou.errors import ForYouError

if TYPE_CHECKING:  # torch is imported where weights are read or written: the CLI starts fast
    import torch

MODEL_SCHEMA_VERSION: int = 1
"""Version of the on-disk model format; bump when a model's tensor layout or manifest meaning changes."""

WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "manifest.json"
PROMOTED_FILE = "promoted.json"
FALLBACK = "heuristic fallback"
FALLBACKS: dict[str, str] = {"realgraph": "decayed-count heuristic", "two_tower": "embedding ANN skipped"}
"""What serves instead of a model that cannot be loaded, where it is not the heuristic (status lines only)."""
PROMOTED = "promoted"
NOT_PROMOTED = "not promoted"

log = logging.getLogger("foryou.registry")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
_VERSION_DIR = re.compile(r"^v([1-9][0-9]*)$")


ErrorKind = Literal["corrupt", "unreadable", "incompatible", "missing", "invalid"]


class RegistryError(ForYouError):
    """A registry problem, as one readable line naming the model, the version and what is wrong.

    ``kind``: "corrupt" (damaged files: a manifest or promotion state that does not parse, a checksum mismatch,
    weights that do not parse or are gone), "unreadable" (the OS refused: permissions, I/O), "incompatible"
    (another model or input schema), "missing" (nothing registered or promoted, no such version), "invalid"
    (a bad argument)."""

    def __init__(self, message: str, kind: ErrorKind = "invalid") -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind


def fallback_status(error: RegistryError | OSError, name: str, fallback: str | None = None) -> str:
    """The status line of a model that cannot be served: ``"corrupt: <reason>, serving the fallback (heuristic)"``."""
    served = (fallback or FALLBACKS.get(name, FALLBACK)).removesuffix(" fallback")
    return f"{_problem(error, name)}, serving the fallback ({served})"


def _problem(error: RegistryError | OSError, name: str) -> str:
    if isinstance(error, RegistryError):
        return f"{error.kind}: {error}"
    return f"unreadable: {name}: {error.__class__.__name__}: {error}"


@dataclass(frozen=True)
class ModelVersion:
    """One registered version, as read from its manifest."""

    name: str
    version: int
    created: str
    metrics: dict[str, Any]
    config: dict[str, Any]
    dataset_fingerprint: str
    code_revision: str
    schema: str
    path: Path
    promoted: bool = False
    model_schema_version: int = MODEL_SCHEMA_VERSION
    sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    """From list() / show(): "promoted" (its weights verified), "not promoted", or what is wrong — "corrupt:
    <reason>, serving the fallback (heuristic)" for a damaged promoted version or promotion state, "corrupt:
    <reason>" for another version. Empty where not computed (promoted(), load())."""

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


def code_revision(repo_dir: Path | None = None) -> str:
    """``git rev-parse --short HEAD`` of the package's repository (``-dirty`` if it has changes), else "unknown"."""
    cwd = repo_dir or Path(__file__).resolve().parent
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=5)

    try:
        head = git("rev-parse", "--short", "HEAD")
        if head.returncode != 0 or not head.stdout.strip():
            return "unknown"
        status = git("status", "--porcelain")
        return head.stdout.strip() + ("-dirty" if status.returncode == 0 and status.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError, ValueError):
        return "unknown"


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=_json_default)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _version_number(value: Any) -> int:
    """A version number from promoted.json: a positive int (JSON true, 1.5 or "3" are damage, not versions)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{value!r} is not a version number")
    return value


def _short(text: str, n: int = 12) -> str:
    return text if len(text) <= n else text[:n] + "…"


class ModelRegistry:
    """Versioned model artifacts under one root directory."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # ---------------------------------------------------------------- paths and state

    def _model_dir(self, name: str) -> Path:
        if not isinstance(name, str) or not _NAME.match(name):
            raise RegistryError(f"{name!r}: not a valid model name (letters, digits, '_', '-', '.')")
        return self.root / name

    def _versions(self, name: str) -> list[int]:
        model_dir = self._model_dir(name)
        if not model_dir.is_dir():
            return []
        found = []
        for child in model_dir.iterdir():
            match = _VERSION_DIR.match(child.name)
            if match and child.is_dir():
                found.append(int(match.group(1)))
        return sorted(found)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(c.name for c in self.root.iterdir() if c.is_dir() and _NAME.match(c.name))

    def _read_promotion(self, name: str) -> dict[str, Any]:
        path = self._model_dir(name) / PROMOTED_FILE
        fix = "`foryou models promote` rewrites it"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return {"version": None, "history": []}
        except OSError as e:
            raise RegistryError(f"{name}: promotion state {path} is unreadable ({e.__class__.__name__}: {e})",
                                "unreadable") from e
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError as e:  # truncated or garbage bytes (UnicodeDecodeError is a ValueError too)
            raise RegistryError(f"{name}: promotion state {path} is not valid JSON ({e}); {fix}", "corrupt") from e
        try:
            if not isinstance(data, dict) or "version" not in data:
                raise TypeError("not a {version, history} object")
            version = data["version"]
            history = [_version_number(v) for v in data.get("history", [])]
            if version is not None:
                version = _version_number(version)
        except (TypeError, ValueError) as e:
            raise RegistryError(f"{name}: promotion state {path} is malformed ({e}); {fix}", "corrupt") from e
        return {"version": version, "history": history}

    def _write_promotion(self, name: str, version: int | None, history: list[int]) -> None:
        _write_json_atomic(self._model_dir(name) / PROMOTED_FILE, {"version": version, "history": history})

    def _read_manifest(self, name: str, version: int, promoted: bool | None = None) -> ModelVersion:
        label = f"{name} v{version}"
        vdir = self._model_dir(name) / f"v{version}"
        path = vdir / MANIFEST_FILE
        if not vdir.is_dir():
            raise RegistryError(f"{label}: no such version in {self.root}", "missing")
        try:
            m = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise RegistryError(f"{label}: manifest is missing ({path})", "corrupt") from e
        except ValueError as e:
            raise RegistryError(f"{label}: manifest is not valid JSON ({e.__class__.__name__})", "corrupt") from e
        except OSError as e:
            raise RegistryError(f"{label}: manifest is unreadable ({e.__class__.__name__}: {e})", "unreadable") from e
        try:
            if m["name"] != name or int(m["version"]) != version:
                raise RegistryError(f"{label}: manifest belongs to {m['name']} v{m['version']}", "corrupt")
            if promoted is None:
                try:
                    promoted = self._read_promotion(name)["version"] == version
                except RegistryError:  # a damaged promotion state promotes nothing
                    promoted = False
            return ModelVersion(
                name=name, version=version, created=str(m["created"]), metrics=dict(m.get("metrics") or {}),
                config=dict(m.get("config") or {}), dataset_fingerprint=str(m.get("dataset_fingerprint", "")),
                code_revision=str(m.get("code_revision", "unknown")), schema=str(m.get("schema", "")), path=vdir,
                promoted=promoted, model_schema_version=int(m["model_schema_version"]),
                sha256=str(m["weights_sha256"]), extra=dict(m.get("extra") or {}))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise RegistryError(f"{label}: manifest is malformed ({e.__class__.__name__}: {e})", "corrupt") from e

    # ---------------------------------------------------------------- writing

    def register(self, name: str, tensors: dict[str, torch.Tensor], *, config: dict, metrics: dict,
                 dataset_fingerprint: str, schema: str, extra: dict | None = None,
                 promote: bool = False) -> ModelVersion:
        """Store ``tensors`` as the next version of ``name`` (v1, v2, ...); optionally promote it."""
        model_dir = self._model_dir(name)
        if not tensors:
            raise RegistryError(f"{name}: refusing to register a model with no tensors")
        import torch
        from safetensors.torch import save_file

        weights: dict[str, torch.Tensor] = {}
        for key, value in tensors.items():
            if not isinstance(key, str) or not isinstance(value, torch.Tensor):
                raise RegistryError(f"{name}: tensors must map str to torch.Tensor (got {key!r})")
            weights[key] = value.detach().to("cpu").contiguous().clone()
        model_dir.mkdir(parents=True, exist_ok=True)
        revision = code_revision()
        tmp = model_dir / f".tmp-{uuid.uuid4().hex}"
        try:
            tmp.mkdir()
            save_file(weights, tmp / WEIGHTS_FILE, metadata={"name": name, "schema": str(schema)})
            digest = _sha256((tmp / WEIGHTS_FILE).read_bytes())
            for _attempt in range(100):
                existing = self._versions(name)
                version = (existing[-1] if existing else 0) + 1
                manifest = {
                    "name": name,
                    "version": version,
                    "created": datetime.now(UTC).isoformat(timespec="seconds"),
                    "dataset_fingerprint": str(dataset_fingerprint),
                    "config": config,
                    "metrics": metrics,
                    "code_revision": revision,
                    "schema": str(schema),
                    "model_schema_version": MODEL_SCHEMA_VERSION,
                    "weights_file": WEIGHTS_FILE,
                    "weights_sha256": digest,
                    "tensors": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in weights.items()},
                    "extra": extra or {},
                }
                try:
                    _write_json_atomic(tmp / MANIFEST_FILE, manifest)
                except TypeError as e:
                    raise RegistryError(
                        f"{name} v{version}: config/metrics/extra must be JSON-serialisable: {e}"
                    ) from e
                try:
                    os.rename(tmp, model_dir / f"v{version}")
                except OSError:
                    if (model_dir / f"v{version}").exists():  # another writer took this number; try the next
                        continue
                    raise
                break
            else:
                raise RegistryError(f"{name}: could not allocate a new version number")
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        if promote:
            return self.promote(name, version)
        return replace(self._read_manifest(name, version), status=NOT_PROMOTED)

    def promote(self, name: str, version: int) -> ModelVersion:
        """Make ``version`` the promoted one; the previously promoted version goes onto the history.

        The version's weights are verified first (a damaged version is never promoted). A damaged
        ``promoted.json`` is replaced (its history is lost; the log says so): promoting is how it is repaired."""
        self.load(name, int(version))  # RegistryError: missing or corrupt weights, another model schema
        try:
            state = self._read_promotion(name)
        except RegistryError as e:
            if e.kind != "corrupt":
                raise
            log.warning("replacing a damaged promotion state", extra={"model": name, "error": str(e)})
            state = {"version": None, "history": []}
        current, history = state["version"], state["history"]
        if current != version:
            if current is not None:
                history = [*history, current]
            self._write_promotion(name, version, history)
        return replace(self._read_manifest(name, version, promoted=True), status=PROMOTED)

    def annotate(self, name: str, version: int, key: str, value: Any) -> ModelVersion:
        """Set ``metrics[key]`` of a registered version (e.g. its promotion verdict), manifest replaced atomically;
        the weights and their checksum are untouched."""
        mv = self._read_manifest(name, int(version))  # RegistryError where it is missing or damaged
        path = mv.path / MANIFEST_FILE
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest["metrics"] = {**(manifest.get("metrics") or {}), key: value}
        _write_json_atomic(path, manifest)
        return self._read_manifest(name, int(version))

    def rollback(self, name: str) -> ModelVersion:
        """Go back to the previously promoted version; RegistryError when there is none."""
        state = self._read_promotion(name)
        history = list(state["history"])
        if not history:
            current = state["version"]
            what = f"v{current} is promoted" if current is not None else "nothing is promoted"
            raise RegistryError(f"{name}: no earlier promoted version to roll back to ({what})", "missing")
        previous = history.pop()
        self.load(name, previous)  # fails clearly if it was deleted or broken
        self._write_promotion(name, previous, history)
        return replace(self._read_manifest(name, previous, promoted=True), status=PROMOTED)

    # ---------------------------------------------------------------- reading

    def promoted(self, name: str) -> ModelVersion | None:
        """The promoted version (status not computed), None when nothing is; RegistryError when damaged."""
        state = self._promotion_or_damage(name, self._versions(name))
        if isinstance(state, RegistryError):
            raise state
        return None if state is None else self._read_manifest(name, state, promoted=True)

    def status(self, name: str, *, schema: str | None = None, fallback: str | None = None) -> str:
        """What serving ``name`` gets, as one line: ``"v3 (promoted)"``, ``"missing: heuristic fallback"`` or
        ``"corrupt: <reason>, serving the fallback (heuristic)"`` (the weights are read and verified)."""
        return self.load_or_fallback(name, schema=schema, fallback=fallback)[2]

    def list(self) -> list[ModelVersion]:
        """Every version of every model, by name then version, each with its ``status``. The promoted version's
        weights are verified; a damaged promotion state or manifest is listed with what is wrong rather than
        left out (a damaged model must not look untrained)."""
        out: list[ModelVersion] = []
        for name in self.names():
            versions = self._versions(name)
            state = self._promotion_or_damage(name, versions)
            out += [self._version_with_status(name, v, state) for v in versions]
        return out

    def show(self, name: str, version: int | None = None) -> ModelVersion:
        """One version with its ``status`` (its weights verified); ``None`` means the promoted one, else the
        latest (also when the promotion state is damaged: the status says so)."""
        versions = self._versions(name)
        state = self._promotion_or_damage(name, versions)
        if version is None:
            if not versions:
                raise RegistryError(f"{name}: no versions registered in {self.root}", "missing")
            version = state if isinstance(state, int) else versions[-1]
        elif int(version) not in versions:
            raise RegistryError(f"{name} v{version}: no such version in {self.root}", "missing")
        return self._version_with_status(name, int(version), state, verify=True)

    def _promotion_or_damage(self, name: str, versions: Sequence[int]) -> int | RegistryError | None:
        """The promoted version number, None, or why the promotion state cannot be trusted."""
        try:
            promoted = self._read_promotion(name)["version"]
        except RegistryError as e:
            return e
        if promoted is not None and promoted not in versions:
            return RegistryError(f"{name}: promoted v{promoted} no longer exists in {self.root}; promote another",
                                 "corrupt")
        return promoted

    def _version_with_status(self, name: str, version: int, state: int | RegistryError | None,
                             *, verify: bool = False) -> ModelVersion:
        """The version with its status. A damaged manifest gives a placeholder (no metrics) whose status says
        why. The promoted version's weights are always verified, another's only with ``verify``."""
        promoted = state == version
        try:
            mv = self._read_manifest(name, version, promoted=promoted)
        except RegistryError as e:
            return ModelVersion(name=name, version=version, created="", metrics={}, config={}, dataset_fingerprint="",
                                code_revision="", schema="", path=self._model_dir(name) / f"v{version}",
                                promoted=promoted, model_schema_version=0,
                                status=fallback_status(e, name) if promoted else _problem(e, name))
        if isinstance(state, RegistryError):  # which version serves is unknown: the fallback does
            return replace(mv, status=fallback_status(state, name))
        if not (promoted or verify):
            return replace(mv, status=NOT_PROMOTED)
        try:
            self.load(name, version)
        except (RegistryError, OSError) as e:
            return replace(mv, status=fallback_status(e, name) if promoted else _problem(e, name))
        return replace(mv, status=PROMOTED if promoted else NOT_PROMOTED)

    def load(
        self, name: str, version: int | None = None, *, schema: str | None = None
    ) -> tuple[dict[str, torch.Tensor], ModelVersion]:
        """Tensors and manifest of the promoted version (or ``version``), verified; RegistryError otherwise."""
        if version is None:
            mv = self.promoted(name)
            if mv is None:
                n = len(self._versions(name))
                what = f"{n} version(s) registered, none promoted" if n else "no versions registered"
                raise RegistryError(f"{name}: no promoted version ({what})", "missing")
        else:
            mv = self._read_manifest(name, int(version))
        if mv.model_schema_version != MODEL_SCHEMA_VERSION:
            raise RegistryError(f"{mv.label}: built for model schema {mv.model_schema_version}, "
                                f"this foryou reads {MODEL_SCHEMA_VERSION}", "incompatible")
        if schema is not None and mv.schema != schema:
            raise RegistryError(f"{mv.label}: input schema {_short(mv.schema)}, expected {_short(schema)}",
                                "incompatible")
        path = mv.path / WEIGHTS_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError as e:
            raise RegistryError(f"{mv.label}: weights file is missing ({path})", "corrupt") from e
        except OSError as e:
            raise RegistryError(f"{mv.label}: weights file is unreadable ({e.__class__.__name__}: {e})",
                                "unreadable") from e
        if _sha256(data) != mv.sha256:
            raise RegistryError(f"{mv.label}: weights file is corrupt (checksum mismatch)", "corrupt")
        from safetensors import SafetensorError
        from safetensors.torch import load as _load_safetensors

        try:
            tensors = _load_safetensors(data)
        except (SafetensorError, ValueError, RuntimeError) as e:
            raise RegistryError(f"{mv.label}: weights file is corrupt ({e})", "corrupt") from e
        return tensors, mv

    def load_or_fallback(
        self, name: str, *, schema: str | None = None, fallback: str | None = None, version: int | None = None
    ) -> tuple[dict[str, torch.Tensor] | None, ModelVersion | None, str]:
        """(tensors, version, status) for traces; never raises for registry problems.

        status is ``"v3 (promoted)"``, ``"missing: heuristic fallback"`` (nothing trained or promoted) or, for a
        model that is there but cannot be served, ``"<kind>: <reason>, serving the fallback (heuristic)"`` with
        kind corrupt, unreadable or incompatible (:func:`fallback_status`). ``fallback``: what serves instead
        (default :data:`FALLBACKS`, else the heuristic). ``version``: that version, promoted or not
        (a candidate under evaluation): status ``"v3 (candidate)"``.
        """
        fallback = fallback or FALLBACKS.get(name, FALLBACK)
        try:
            if version is not None:
                tensors, mv = self.load(name, int(version), schema=schema)
                return tensors, mv, f"v{mv.version} (candidate)"
            if self._read_promotion(name)["version"] is None:
                n = len(self._versions(name))
                if n:
                    return None, None, f"missing: {n} version(s), none promoted; {fallback}"
                return None, None, f"missing: {fallback}"
            tensors, mv = self.load(name, schema=schema)
        except (RegistryError, OSError) as e:
            return None, None, fallback_status(e, name, fallback)
        return tensors, mv, f"v{mv.version} (promoted)"
