"""The architecture as a test: every `foryou` import points down the layer order README states."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "foryou"


def layer_order() -> list[set[str]]:
    """README's "Layer order" line, top first: `cli > bench > ... > vocab, errors, logs`."""
    line = re.search(r"^Layer order[^:]*: `([^`]+)`", (ROOT / "README.md").read_text(), re.M)
    assert line, "README.md has no 'Layer order ...: `a > b > ...`' line"
    return [{name.strip() for name in level.split(",")} for level in line.group(1).split(">")]


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """The first component under `foryou.` of every import in a module, function-level ones included."""
    module = ".".join(path.relative_to(root).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names = [".".join([*base, node.module or ""]).rstrip(".")]
            else:
                names = [node.module or ""]
            if names == ["foryou"]:  # `from foryou import config, logs`
                names = [f"foryou.{a.name}" for a in node.names]
        else:
            continue
        found |= {n.split(".")[1] for n in names if n.startswith("foryou.")}
    return found


def test_every_import_points_down_the_layer_order():
    levels = layer_order()
    rank = {name: i for i, level in enumerate(levels) for name in level}
    top = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
           if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    assert top == set(rank), f"README's layer order and foryou/ differ: missing {top - set(rank)}, " \
                             f"stale {set(rank) - top}"
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        own = parts[0].removesuffix(".py")
        if own == "__init__":
            continue
        for target in imports_of(path):
            if rank[target] < rank[own]:  # a smaller rank is higher up
                upward.append(f"{path.relative_to(ROOT)} imports foryou.{target} ({own} is below {target})")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    """The walker must not miss the imports that hide upward dependencies best."""
    pkg = tmp_path / "foryou" / "models"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    mod = pkg / "net.py"
    mod.write_text("def f():\n    from foryou.data.split import history\n\nfrom ..timeline import engine\n"
                   "from foryou import cli\nimport foryou.eval.metrics\n")
    assert imports_of(mod, root=tmp_path) == {"data", "timeline", "cli", "eval"}


def test_models_are_torch_modules_and_the_mixer_knows_no_product():
    """models/: no datasets, no training, no serving; mixer/: the generic framework only."""
    allowed = {"models": {"models", "vocab", "errors"}, "mixer": {"mixer", "vocab", "errors"}}
    for folder, ok in allowed.items():
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            assert imports_of(path) <= ok, f"{path.relative_to(ROOT)} imports {sorted(imports_of(path) - ok)}"


def test_no_module_is_loaded_by_name():
    """importlib by module path is an upward import the graph above cannot see."""
    for path in sorted(PACKAGE.rglob("*.py")):
        assert "import_module(" not in path.read_text(), f"{path.relative_to(ROOT)} loads a module by name"


def test_modules_and_functions_stay_small():
    """A module a reader can hold in mind (≤ 500 lines) and functions that do one thing (≤ 80 lines)."""
    too_big = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        name = path.relative_to(ROOT)
        if source.count("\n") > 500:
            too_big.append(f"{name}: {source.count(chr(10))} lines")
        too_big += [f"{name}:{node.lineno} {node.name}(): {node.end_lineno - node.lineno + 1} lines"
                    for node in ast.walk(ast.parse(source))
                    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                    and node.end_lineno is not None and node.end_lineno - node.lineno + 1 > 80]
    assert not too_big, "\n".join(too_big)
