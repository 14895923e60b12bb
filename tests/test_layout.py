"""The house's layout: layers as import-linter contracts, no cycles, small modules.

The contracts themselves are in pyproject.toml ([tool.importlinter]); docs/architecture.md
explains them. These tests fail when someone imports across a forbidden line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 500


def python_modules() -> list[Path]:
    files = [*ROOT.joinpath("chat").rglob("*.py"), *ROOT.joinpath("glmweb").rglob("*.py")]
    return [path for path in files if "migrations" not in path.parts]


def test_the_layering_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout[-4000:]
    assert "0 broken" in run.stdout


def test_a_forbidden_import_breaks_a_contract(tmp_path: Path) -> None:
    # The contracts are not vacuous: the upstream client importing Django is caught.
    config = ROOT.joinpath("pyproject.toml").read_text()
    probe = ROOT / "chat" / "upstream" / "_layout_probe.py"
    probe.write_text("import django.conf\n")
    try:
        copy = tmp_path / "pyproject.toml"
        copy.write_text(config)
        lint = Path(sys.executable).with_name("lint-imports")
        run = subprocess.run(
            [str(lint), "--no-cache", "--contract", "upstream-plain", str(copy)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        probe.unlink()
    assert run.returncode != 0
    assert "chat.upstream._layout_probe -> django" in run.stdout


def test_there_is_no_import_cycle() -> None:
    graph = grimp.build_graph("chat", "glmweb", exclude_type_checking_imports=True)
    modules = sorted(m for m in graph.modules if m.startswith(("chat.", "glmweb.")))
    cycles = []
    for module in modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.startswith(module + ".") or module.startswith(imported + "."):
                continue  # a package and its own modules
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None and not _through_own_package(back, module):
                cycles.append((module, *back))
    assert cycles == []


def _through_own_package(chain: tuple[str, ...], module: str) -> bool:
    # A chain that reaches `module` only via its package's __init__ is no cycle of ours.
    return any(module.startswith(step + ".") for step in chain)


@pytest.mark.parametrize("path", python_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_over_500_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES


def test_every_package_says_what_it_holds_and_may_import() -> None:
    undocumented = []
    for init in ROOT.joinpath("chat").rglob("__init__.py"):
        if "migrations" in init.parts or "management" in init.parts:
            continue
        text = init.read_text().strip()
        if not text.startswith('"""') or "TODO" in text.split('"""')[1]:
            undocumented.append(str(init.relative_to(ROOT)))
    assert undocumented == []
