"""The house rules the code itself can check: sizes, what pages import, model cards (the streamlit boundary
is checked by importing every backend module, in test_core)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BACKEND = sorted((ROOT / "backend").rglob("*.py"))
PAGES = sorted((ROOT / "pages").glob("*.py"))
MAX_FUNCTION, MAX_BACKEND_FILE, MAX_PAGE = 80, 400, 250


def _functions(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.end_lineno - node.lineno + 1


def long_functions(paths) -> list[str]:
    return [f"{p.relative_to(ROOT)}:{name} ({n} lines)" for p in paths for name, n in _functions(p)
            if n > MAX_FUNCTION]


def test_no_function_over_80_lines():
    assert long_functions([*BACKEND, *PAGES]) == []


def test_file_sizes():
    big = [f"{p.relative_to(ROOT)} ({n})" for p in BACKEND if (n := len(p.read_text().splitlines())) > MAX_BACKEND_FILE]
    big += [f"{p.relative_to(ROOT)} ({n})" for p in PAGES if (n := len(p.read_text().splitlines())) > MAX_PAGE]
    assert big == []


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []


def test_pages_import_only_public_backend_names():
    """A page imports `from backend.<domain> import <public name>` and nothing deeper; never torch."""
    bad = []
    for p in PAGES:
        for mod, names in _imports(p):
            parts = mod.split(".")
            if parts[0] == "torch" or (parts[0] == "backend" and (len(parts) != 2 or any(n.startswith("_")
                                                                                       for n in names))):
                bad.append(f"{p.name}: {mod} {names}")
            if parts[0] == "backend" and len(parts) == 2:
                import importlib

                public = getattr(importlib.import_module(mod), "__all__", None)
                bad += [f"{p.name}: {mod}.{n} is not in __all__" for n in names if public is not None
                        and n not in public]
    assert bad == []


CARDS = sorted((ROOT / "assets" / "checkpoints").glob("*.json"))


@pytest.mark.parametrize("path", CARDS, ids=[p.stem for p in CARDS])
def test_every_card_is_a_slim_model_card_with_its_prose(path):
    from backend.core.cards import validate_card_file

    card = validate_card_file(path)
    assert card.name == path.stem and card.size_bytes == path.with_suffix(".pt").stat().st_size
    assert card.metrics and card.headline and card.readout and card.limitations
    assert all(t.metric for t in card.targets)
