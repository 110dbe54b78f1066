"""The reports' one layout: Jinja2 templates shipped as package data, rendered with autoescaping."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from importlib import resources
from pathlib import Path

from foryou.reports import render

ROOT = Path(__file__).resolve().parents[1]


def test_values_are_escaped_and_the_layout_is_shared():
    page = render("base.html.j2", title="<script>alert(1)</script>")
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.startswith("<!doctype html>") and "<style>" in page


def test_templates_ship_as_package_data():
    """Every template is found through the installed package (the editable install here) and is
    covered by pyproject's package-data globs, so a wheel carries it too."""
    templates = resources.files("foryou.reports") / "templates"
    names = sorted(t.name for t in templates.iterdir() if t.name.endswith(".j2"))
    assert {"base.html.j2", "eval.html.j2", "simulation.html.j2"} <= set(names)
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["foryou.reports"]
    assert all(any(fnmatch(f"templates/{n}", g) for g in globs) for n in names)
    on_disk = sorted(p.name for p in (ROOT / "foryou" / "reports" / "templates").iterdir())
    assert names == [n for n in on_disk if n.endswith(".j2")] and on_disk == names  # nothing outside the globs
