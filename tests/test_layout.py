"""The layout's promises: one import name, and imports that only point down."""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What each floor may import from driftline (itself always).
ALLOWED = {
    "schemas": set(),
    "monitors": {"schemas"},
    "streams": {"schemas"},
    "agents": {"schemas", "monitors", "streams"},
}


def driftline_imports(path: Path) -> set[str]:
    floors = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: use absolute driftline.* imports"
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] in ALLOWED:
                pytest.fail(f"{path}: bare import of {name}; import driftline.{name} instead")
            if parts[0] == "driftline" and len(parts) > 1:
                floors.add(parts[1])
    return floors


@pytest.mark.parametrize("floor", sorted(ALLOWED))
def test_imports_point_down_only(floor):
    for path in (ROOT / floor).rglob("*.py"):
        used = driftline_imports(path) - {floor}
        assert used <= ALLOWED[floor], f"{path.relative_to(ROOT)} imports {used - ALLOWED[floor]}"


@pytest.mark.parametrize("floor", sorted(ALLOWED))
def test_root_folders_are_imported_as_driftline_packages(floor):
    module = importlib.import_module(f"driftline.{floor}")
    assert Path(module.__file__ or "").resolve().parent == ROOT / floor


def test_the_core_never_touches_kafka_or_the_clock():
    forbidden = {"faust", "kafka", "aiokafka", "time"}
    for path in (ROOT / "monitors").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = {node.module.split(".")[0]}
            else:
                continue
            assert not names & forbidden, f"{path.relative_to(ROOT)} imports {names & forbidden}"
        assert "datetime.now" not in path.read_text()
