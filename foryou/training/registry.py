"""Model registry: versioned artifacts on disk, weights without pickle, promotion and rollback.

Layout under ``root`` (callers use ``<dataset>/models``)::

    root/<name>/v<N>/weights.safetensors   tensors only (safetensors; never pickle, never torch.load)
    root/<name>/v<N>/manifest.json         name, version, created (UTC), dataset fingerprint, config,
                                           metrics, code revision, input schema, model schema version,
                                           sha256 of the weights, extra
    root/<name>/promoted.json              {"version": N, "history": [previously promoted versions]}

A version directory is written under a temporary name and renamed into place, so a crash never leaves a
half-written version; ``promoted.json`` is replaced atomically. Every problem (missing, corrupt, written by
another model schema, trained on another input schema) raises :class:`RegistryError` with one readable line;
:meth:`ModelRegistry.load_or_fallback` turns those into a status line for traces and never raises.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where weights are read or written: the CLI starts fast
    import torch

MODEL_SCHEMA_VERSION: int = 1
"""Version of the on-disk model format; bump when a model's tensor layout or manifest meaning changes."""

WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "manifest.json"
PROMOTED_FILE = "promoted.json"
FALLBACK = "heuristic fallback"

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
_VERSION_DIR = re.compile(r"^v([1-9][0-9]*)$")


class RegistryError(Exception):
    """A registry problem, as one readable line naming the model, the version and what is wrong."""


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

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


def code_revision(repo_dir: Path | None = None) -> str:
    """``git rev-parse --short HEAD`` of the package's repository (``-dirty`` if it has changes), else "unknown"."""
    cwd = repo_dir or Path(__file__).resolve().parent
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, env=env, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0 or not head.stdout.strip():
            return "unknown"
        revision = head.stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=cwd, env=env, capture_output=True, text=True, timeout=5
        )
        if status.returncode == 0 and status.stdout.strip():
            revision += "-dirty"
        return revision
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
        if not path.exists():
            return {"version": None, "history": []}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            version = data.get("version")
            history = [int(v) for v in data.get("history", [])]
            if version is not None:
                version = int(version)
        except (OSError, ValueError, TypeError, AttributeError) as e:
            raise RegistryError(f"{name}: promotion state {path} is unreadable ({e.__class__.__name__})") from e
        return {"version": version, "history": history}

    def _write_promotion(self, name: str, version: int | None, history: list[int]) -> None:
        _write_json_atomic(self._model_dir(name) / PROMOTED_FILE, {"version": version, "history": history})

    def _read_manifest(self, name: str, version: int, promoted: bool | None = None) -> ModelVersion:
        label = f"{name} v{version}"
        vdir = self._model_dir(name) / f"v{version}"
        path = vdir / MANIFEST_FILE
        if not vdir.is_dir():
            raise RegistryError(f"{label}: no such version in {self.root}")
        try:
            m = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise RegistryError(f"{label}: manifest is missing ({path})") from e
        except (OSError, ValueError) as e:
            raise RegistryError(f"{label}: manifest is unreadable ({e.__class__.__name__})") from e
        try:
            if m["name"] != name or int(m["version"]) != version:
                raise RegistryError(f"{label}: manifest belongs to {m['name']} v{m['version']}")
            if promoted is None:
                promoted = self._read_promotion(name)["version"] == version
            return ModelVersion(
                name=name,
                version=version,
                created=str(m["created"]),
                metrics=dict(m.get("metrics") or {}),
                config=dict(m.get("config") or {}),
                dataset_fingerprint=str(m.get("dataset_fingerprint", "")),
                code_revision=str(m.get("code_revision", "unknown")),
                schema=str(m.get("schema", "")),
                path=vdir,
                promoted=promoted,
                model_schema_version=int(m["model_schema_version"]),
                sha256=str(m["weights_sha256"]),
                extra=dict(m.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise RegistryError(f"{label}: manifest is malformed ({e.__class__.__name__}: {e})") from e

    # ---------------------------------------------------------------- writing

    def register(
        self,
        name: str,
        tensors: dict[str, torch.Tensor],
        *,
        config: dict,
        metrics: dict,
        dataset_fingerprint: str,
        schema: str,
        extra: dict | None = None,
        promote: bool = False,
    ) -> ModelVersion:
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
            self.promote(name, version)
        return self._read_manifest(name, version)

    def promote(self, name: str, version: int) -> ModelVersion:
        """Make ``version`` the promoted one; the previously promoted version goes onto the history."""
        mv = self._read_manifest(name, version, promoted=False)
        if mv.model_schema_version != MODEL_SCHEMA_VERSION:
            raise RegistryError(
                f"{mv.label}: built for model schema {mv.model_schema_version}, "
                f"this foryou reads {MODEL_SCHEMA_VERSION}; not promoted"
            )
        if not (mv.path / WEIGHTS_FILE).is_file():
            raise RegistryError(f"{mv.label}: weights file is missing; not promoted")
        state = self._read_promotion(name)
        current, history = state["version"], state["history"]
        if current != version:
            if current is not None:
                history = [*history, current]
            self._write_promotion(name, version, history)
        return self._read_manifest(name, version, promoted=True)

    def rollback(self, name: str) -> ModelVersion:
        """Go back to the previously promoted version; RegistryError when there is none."""
        state = self._read_promotion(name)
        history = list(state["history"])
        if not history:
            current = state["version"]
            what = f"v{current} is promoted" if current is not None else "nothing is promoted"
            raise RegistryError(f"{name}: no earlier promoted version to roll back to ({what})")
        previous = history.pop()
        self._read_manifest(name, previous, promoted=False)  # fails clearly if it was deleted or broken
        self._write_promotion(name, previous, history)
        return self._read_manifest(name, previous, promoted=True)

    # ---------------------------------------------------------------- reading

    def promoted(self, name: str) -> ModelVersion | None:
        version = self._read_promotion(name)["version"]
        return None if version is None else self._read_manifest(name, version, promoted=True)

    def list(self) -> list[ModelVersion]:
        """Every readable version of every model, by name then version. Unreadable manifests are left out
        (``show``/``load`` on them give the reason)."""
        out: list[ModelVersion] = []
        for name in self.names():
            try:
                promoted_version = self._read_promotion(name)["version"]
            except RegistryError:
                promoted_version = None
            for version in self._versions(name):
                try:
                    out.append(self._read_manifest(name, version, promoted=version == promoted_version))
                except RegistryError:
                    continue
        return out

    def show(self, name: str, version: int | None = None) -> ModelVersion:
        """One version; ``None`` means the promoted one, else the latest."""
        if version is not None:
            return self._read_manifest(name, int(version))
        mv = self.promoted(name)
        if mv is not None:
            return mv
        versions = self._versions(name)
        if not versions:
            raise RegistryError(f"{name}: no versions registered in {self.root}")
        return self._read_manifest(name, versions[-1])

    def load(
        self, name: str, version: int | None = None, *, schema: str | None = None
    ) -> tuple[dict[str, torch.Tensor], ModelVersion]:
        """Tensors and manifest of the promoted version (or ``version``), verified; RegistryError otherwise."""
        if version is None:
            mv = self.promoted(name)
            if mv is None:
                n = len(self._versions(name))
                what = f"{n} version(s) registered, none promoted" if n else "no versions registered"
                raise RegistryError(f"{name}: no promoted version ({what})")
        else:
            mv = self._read_manifest(name, int(version))
        if mv.model_schema_version != MODEL_SCHEMA_VERSION:
            raise RegistryError(
                f"{mv.label}: built for model schema {mv.model_schema_version}, "
                f"this foryou reads {MODEL_SCHEMA_VERSION}"
            )
        if schema is not None and mv.schema != schema:
            raise RegistryError(f"{mv.label}: input schema {_short(mv.schema)}, expected {_short(schema)}")
        path = mv.path / WEIGHTS_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError as e:
            raise RegistryError(f"{mv.label}: weights file is missing ({path})") from e
        except OSError as e:
            raise RegistryError(f"{mv.label}: weights file is unreadable ({e.__class__.__name__})") from e
        if _sha256(data) != mv.sha256:
            raise RegistryError(f"{mv.label}: weights file is corrupt (checksum mismatch)")
        from safetensors import SafetensorError
        from safetensors.torch import load as _load_safetensors

        try:
            tensors = _load_safetensors(data)
        except (SafetensorError, ValueError, RuntimeError) as e:
            raise RegistryError(f"{mv.label}: weights file is corrupt ({e})") from e
        return tensors, mv

    def load_or_fallback(
        self, name: str, *, schema: str | None = None, fallback: str = FALLBACK
    ) -> tuple[dict[str, torch.Tensor] | None, ModelVersion | None, str]:
        """(tensors, version, status) for traces; never raises for registry problems.

        status is ``"v3 (promoted)"``, ``"missing: heuristic fallback"`` or ``"error: <reason>; heuristic fallback"``.
        """
        try:
            if self._read_promotion(name)["version"] is None:
                n = len(self._versions(name))
                if n:
                    return None, None, f"missing: {n} version(s), none promoted; {fallback}"
                return None, None, f"missing: {fallback}"
            tensors, mv = self.load(name, schema=schema)
        except RegistryError as e:
            return None, None, f"error: {e}; {fallback}"
        except OSError as e:
            return None, None, f"error: {name}: {e.__class__.__name__}: {e}; {fallback}"
        return tensors, mv, f"v{mv.version} (promoted)"
