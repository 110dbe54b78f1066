from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from foryou import registry as registry_module
from foryou.errors import ForYouError
from foryou.registry import MODEL_SCHEMA_VERSION, ModelRegistry, RegistryError


def _tensors(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(4, 3, generator=g),
        "b": torch.zeros(3),
        "ids": torch.arange(5, dtype=torch.int64),
    }


def _register(reg: ModelRegistry, seed: int = 0, *, schema: str = "schema-a", promote: bool = False):
    return reg.register(
        "heavy_ranker",
        _tensors(seed),
        config={"hidden": 8, "lr": 0.01},
        metrics={"auc": 0.7 + seed / 100},
        dataset_fingerprint="fp-123",
        schema=schema,
        extra={"heads": ["like", "reply"]},
        promote=promote,
    )


def test_register_list_show_load(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models")
    v1 = _register(reg, 1)
    v2 = _register(reg, 2)
    assert (v1.version, v2.version) == (1, 2)
    assert v1.label == "heavy_ranker v1"
    assert not v1.promoted and not v2.promoted

    manifest = json.loads((v2.path / "manifest.json").read_text())
    for key in (
        "name",
        "version",
        "created",
        "dataset_fingerprint",
        "config",
        "metrics",
        "code_revision",
        "schema",
        "model_schema_version",
        "weights_sha256",
        "extra",
    ):
        assert key in manifest
    assert manifest["model_schema_version"] == MODEL_SCHEMA_VERSION
    assert manifest["config"] == {"hidden": 8, "lr": 0.01}
    assert manifest["created"].endswith("+00:00")
    assert v2.code_revision
    assert (v2.path / "weights.safetensors").is_file()

    listed = reg.list()
    assert [(m.name, m.version, m.promoted) for m in listed] == [("heavy_ranker", 1, False), ("heavy_ranker", 2, False)]
    assert reg.show("heavy_ranker").version == 2  # nothing promoted: latest
    assert reg.show("heavy_ranker", 1).metrics == {"auc": pytest.approx(0.71)}

    reg.promote("heavy_ranker", 1)
    assert reg.show("heavy_ranker").version == 1  # promoted wins over latest
    tensors, mv = reg.load("heavy_ranker")
    assert mv.version == 1 and mv.promoted
    expected = _tensors(1)
    assert tensors.keys() == expected.keys()
    for k in expected:
        assert torch.equal(tensors[k], expected[k])
        assert tensors[k].dtype == expected[k].dtype

    tensors2, mv2 = reg.load("heavy_ranker", 2, schema="schema-a")
    assert mv2.version == 2 and not mv2.promoted
    assert torch.equal(tensors2["w"], _tensors(2)["w"])
    assert [m.promoted for m in reg.list()] == [True, False]


def test_promote_and_rollback_order(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    for seed in range(3):
        _register(reg, seed)
    assert reg.promoted("heavy_ranker") is None
    with pytest.raises(RegistryError, match="heavy_ranker: no earlier promoted version"):
        reg.rollback("heavy_ranker")

    reg.promote("heavy_ranker", 1)
    reg.promote("heavy_ranker", 2)
    reg.promote("heavy_ranker", 3)
    reg.promote("heavy_ranker", 3)  # re-promoting the current one does not grow the history
    state = json.loads((tmp_path / "heavy_ranker" / "promoted.json").read_text())
    assert state == {"version": 3, "history": [1, 2]}

    assert reg.rollback("heavy_ranker").version == 2
    assert reg.promoted("heavy_ranker").version == 2
    assert reg.rollback("heavy_ranker").version == 1
    with pytest.raises(RegistryError, match="no earlier promoted version"):
        reg.rollback("heavy_ranker")
    assert reg.promoted("heavy_ranker").version == 1

    with pytest.raises(RegistryError, match="heavy_ranker v9: no such version"):
        reg.promote("heavy_ranker", 9)


def test_register_with_promote(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    mv = _register(reg, 0, promote=True)
    assert mv.promoted
    tensors, version, status = reg.load_or_fallback("heavy_ranker", schema="schema-a")
    assert status == "v1 (promoted)"
    assert version is not None and version.version == 1
    assert tensors is not None and torch.equal(tensors["w"], _tensors(0)["w"])


def test_corrupt_weights_give_clear_error_and_fallback(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    mv = _register(reg, 0, promote=True)
    weights = mv.path / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4:] = b"\xff\xff\xff\xff"
    weights.write_bytes(bytes(data))

    with pytest.raises(RegistryError, match=r"heavy_ranker v1: weights file is corrupt \(checksum mismatch\)"):
        reg.load("heavy_ranker")
    tensors, version, status = reg.load_or_fallback("heavy_ranker")
    assert tensors is None and version is None
    assert status == ("corrupt: heavy_ranker v1: weights file is corrupt (checksum mismatch), "
                      "serving the fallback (heuristic)")

    # Garbage that also matches its recorded checksum (e.g. a hand-edited manifest) is still caught.
    weights.write_bytes(b"not a safetensors file")
    manifest_path = mv.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["weights_sha256"] = registry_module._sha256(b"not a safetensors file")
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(RegistryError, match="heavy_ranker v1: weights file is corrupt"):
        reg.load("heavy_ranker")

    weights.unlink()
    with pytest.raises(RegistryError, match="heavy_ranker v1: weights file is missing"):
        reg.load("heavy_ranker")
    assert reg.load_or_fallback("heavy_ranker")[2].startswith("corrupt: heavy_ranker v1: weights file is missing")


def test_corrupt_manifest_gives_fallback(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    mv = _register(reg, 0, promote=True)
    (mv.path / "manifest.json").write_text("{not json")
    tensors, version, status = reg.load_or_fallback("heavy_ranker")
    assert tensors is None and version is None
    expected = ("corrupt: heavy_ranker v1: manifest is not valid JSON (JSONDecodeError), "
                "serving the fallback (heuristic)")
    assert status == expected
    # listed with what is wrong, not left out (a damaged model must not look untrained), and not a crash
    [listed] = reg.list()
    assert (listed.version, listed.promoted, listed.status, listed.metrics) == (1, True, expected, {})
    assert reg.show("heavy_ranker").status == expected


def test_model_schema_mismatch_gives_clear_error_and_fallback(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    mv = _register(reg, 0, promote=True)
    manifest_path = mv.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["model_schema_version"] = MODEL_SCHEMA_VERSION + 1
    manifest_path.write_text(json.dumps(manifest))

    expected = (
        f"heavy_ranker v1: built for model schema {MODEL_SCHEMA_VERSION + 1}, this foryou reads {MODEL_SCHEMA_VERSION}"
    )
    with pytest.raises(RegistryError) as info:
        reg.load("heavy_ranker")
    assert str(info.value) == expected
    tensors, version, status = reg.load_or_fallback("heavy_ranker")
    assert tensors is None and version is None
    assert status == f"incompatible: {expected}, serving the fallback (heuristic)"

    with pytest.raises(RegistryError, match="built for model schema"):
        reg.promote("heavy_ranker", 1)


def test_input_schema_mismatch(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    _register(reg, 0, schema="a" * 40, promote=True)
    with pytest.raises(RegistryError, match=r"heavy_ranker v1: input schema aaaaaaaaaaaa…, expected bbbbbbbbbbbb…"):
        reg.load("heavy_ranker", schema="b" * 40)
    tensors, _, status = reg.load_or_fallback("heavy_ranker", schema="b" * 40)
    assert tensors is None
    assert status.startswith("incompatible: heavy_ranker v1: input schema")
    assert status.endswith(", serving the fallback (heuristic)")
    assert reg.load("heavy_ranker", schema="a" * 40)[1].version == 1


def test_missing_model_falls_back(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "does-not-exist")
    assert reg.list() == []
    assert reg.load_or_fallback("heavy_ranker") == (None, None, "missing: heuristic fallback")
    with pytest.raises(RegistryError, match="heavy_ranker: no promoted version"):
        reg.load("heavy_ranker")
    with pytest.raises(RegistryError, match="heavy_ranker: no versions registered"):
        reg.show("heavy_ranker")

    _register(ModelRegistry(tmp_path / "does-not-exist"), 0)  # registered but not promoted
    tensors, version, status = reg.load_or_fallback("heavy_ranker")
    assert tensors is None and version is None
    assert status.startswith("missing:") and "none promoted" in status


def test_corrupt_promotion_state_gives_fallback(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    _register(reg, 0, promote=True)
    (tmp_path / "heavy_ranker" / "promoted.json").write_text("[]")
    status = reg.load_or_fallback("heavy_ranker")[2]
    assert status.startswith("corrupt: heavy_ranker: promotion state") and "malformed" in status
    assert status.endswith(", serving the fallback (heuristic)")


def test_partial_write_leaves_no_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = ModelRegistry(tmp_path)
    _register(reg, 0)

    def boom(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        _register(reg, 1)
    assert sorted(p.name for p in (tmp_path / "heavy_ranker").iterdir()) == ["v1"]
    assert [m.version for m in reg.list()] == [1]

    monkeypatch.undo()
    assert _register(reg, 2).version == 2


def test_invalid_inputs(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    with pytest.raises(RegistryError, match="not a valid model name"):
        reg.register("../evil", _tensors(0), config={}, metrics={}, dataset_fingerprint="x", schema="s")
    with pytest.raises(RegistryError, match="JSON-serialisable"):
        reg.register("m", _tensors(0), config={"f": object()}, metrics={}, dataset_fingerprint="x", schema="s")
    assert not (tmp_path / "m").exists() or [p.name for p in (tmp_path / "m").iterdir()] == []
    # numpy/torch scalars in metrics are stored as plain numbers
    mv = reg.register(
        "m", _tensors(0), config={}, metrics={"auc": torch.tensor(0.5)}, dataset_fingerprint="x", schema="s"
    )
    assert mv.metrics == {"auc": 0.5}


def test_load_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = ModelRegistry(tmp_path)
    _register(reg, 0, promote=True)

    def forbidden(*args, **kwargs):
        raise AssertionError("torch.load must not be used")

    monkeypatch.setattr(torch, "load", forbidden)
    tensors, mv = reg.load("heavy_ranker")
    assert mv.version == 1 and "w" in tensors


# -- damaged models say so wherever their status is shown (never "not trained") ----------------------


def test_registry_errors_are_user_errors(tmp_path: Path) -> None:
    """The CLI prints any ForYouError as one `error:` line; a registry problem is one."""
    with pytest.raises(ForYouError, match="heavy_ranker: no versions registered"):
        ModelRegistry(tmp_path).show("heavy_ranker")
    assert issubclass(RegistryError, ForYouError)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_promoted_weights_show_as_corrupt_in_list_and_show(tmp_path: Path, damage: str) -> None:
    reg = ModelRegistry(tmp_path)
    v1 = _register(reg, 0, promote=True)
    _register(reg, 1)  # v2: registered, not promoted
    weights = v1.path / "weights.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x00garbage" * 16)

    expected = ("corrupt: heavy_ranker v1: weights file is corrupt (checksum mismatch), "
                "serving the fallback (heuristic)")
    assert reg.load_or_fallback("heavy_ranker")[2] == expected
    assert reg.status("heavy_ranker") == expected
    assert [(m.version, m.promoted, m.status) for m in reg.list()] == [(1, True, expected), (2, False, "not promoted")]
    shown = reg.show("heavy_ranker")
    assert (shown.version, shown.status) == (1, expected)
    with pytest.raises(RegistryError, match="checksum mismatch"):  # a damaged version is never promoted
        reg.promote("heavy_ranker", 1)
    assert reg.promote("heavy_ranker", 2).status == "promoted"
    assert [m.status for m in reg.list()] == ["not promoted", "promoted"]  # list() verifies the promoted one only
    assert reg.show("heavy_ranker", 1).status == "corrupt: heavy_ranker v1: weights file is corrupt (checksum mismatch)"


@pytest.mark.parametrize("content", [b"{\"version\": 1, \"hist", b"\xff\xfe\x00garbage", b"[]", b'{"version": "1"}',
                                     b'{"version": 7, "history": []}'])
def test_damaged_promotion_state_shows_as_corrupt_and_promoting_repairs_it(tmp_path: Path, content: bytes) -> None:
    reg = ModelRegistry(tmp_path)
    _register(reg, 0, promote=True)
    _register(reg, 1)
    (tmp_path / "heavy_ranker" / "promoted.json").write_bytes(content)

    status = reg.load_or_fallback("heavy_ranker")[2]
    assert status.startswith("corrupt: heavy_ranker: ") and status.endswith(", serving the fallback (heuristic)")
    assert "promot" in status  # names the promotion state (or the promoted version that is gone)
    assert [(m.promoted, m.status) for m in reg.list()] == [(False, status), (False, status)]
    shown = reg.show("heavy_ranker")
    assert (shown.version, shown.status) == (2, status)  # the latest, saying why nothing serves
    with pytest.raises(RegistryError, match="promot"):
        reg.load("heavy_ranker")
    assert reg.promote("heavy_ranker", 1).status == "promoted"  # how it is repaired
    assert reg.load_or_fallback("heavy_ranker")[2] == "v1 (promoted)"
    assert [m.status for m in reg.list()] == ["promoted", "not promoted"]


def test_healthy_and_unpromoted_statuses(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    _register(reg, 0)
    assert [m.status for m in reg.list()] == ["not promoted"]
    assert reg.status("heavy_ranker") == "missing: 1 version(s), none promoted; heuristic fallback"
    assert reg.status("realgraph") == "missing: decayed-count heuristic"  # each model's own fallback
    _register(reg, 1, promote=True)
    assert [m.status for m in reg.list()] == ["not promoted", "promoted"]
    assert reg.show("heavy_ranker").status == "promoted" and reg.status("heavy_ranker") == "v2 (promoted)"


def test_annotate_records_a_verdict_and_a_candidate_loads_by_version(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models")
    _register(reg, 1, promote=True)
    _register(reg, 2)
    verdict = {"candidate_ndcg": 0.1, "served_ndcg": 0.2, "promoted": False}
    v2 = reg.annotate("heavy_ranker", 2, "promotion", verdict)
    assert v2.metrics == {"auc": 0.72, "promotion": verdict}  # the other metrics stay
    assert reg.show("heavy_ranker", 2).status == "not promoted"  # weights untouched: still verified
    assert reg.promoted("heavy_ranker").version == 1
    tensors, mv, status = reg.load_or_fallback("heavy_ranker", schema="schema-a", version=2)
    assert status == "v2 (candidate)" and mv is not None and mv.version == 2
    assert torch.equal(tensors["w"], _tensors(2)["w"])
    assert reg.load_or_fallback("heavy_ranker", version=7)[2].startswith("missing: heavy_ranker v7")
    with pytest.raises(RegistryError, match="no such version"):
        reg.annotate("heavy_ranker", 9, "promotion", verdict)
