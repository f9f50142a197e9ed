"""The layout's promises: one import name, and imports that only point down."""

import ast
import importlib
import os
import subprocess
import sys
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


FAUST_WIRING = {
    "agents/health.py",
    "agents/metrics.py",
    "agents/registry_follower.py",
    "agents/status.py",
    "agents/tables.py",
    "agents/wiring.py",
    "agents/worker.py",
    "streams/app.py",
    "streams/batching.py",
    "streams/broker_contact.py",
    "streams/faust_fixes.py",
    "streams/security.py",
    "streams/sending.py",
}
"""The modules that connect driftline to faust and its Kafka client, aiokafka: no other may
import them, so the intake, the registry and the statistics run (and replay) without them."""


def imported_top_levels(path: Path) -> set[str]:
    """The top-level packages a module imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_only_the_faust_wiring_imports_faust_or_aiokafka():
    importing = {
        str(path.relative_to(ROOT))
        for folder in ("schemas", "monitors", "streams", "agents", "driftline")
        for path in (ROOT / folder).rglob("*.py")
        if imported_top_levels(path) & {"faust", "aiokafka", "mode"}
    }
    assert importing == FAUST_WIRING


@pytest.mark.parametrize("module", ["driftline.client", "driftline.replay", "driftline.agents"])
def test_the_face_and_the_intake_load_without_faust(module):
    # A fresh interpreter: this one has loaded everything already.
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, {module}; print(sorted(m for m in ('faust', 'aiokafka', 'mode') "
            "if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONSAFEPATH": "1"},
    )
    assert loaded.stdout.strip() == "[]", loaded.stderr


def test_the_lazy_names_of_the_packages_resolve():
    import driftline.agents
    import driftline.streams

    for package in (driftline.agents, driftline.streams):
        for name in package.__all__:
            assert getattr(package, name) is not None, (package.__name__, name)
        with pytest.raises(AttributeError, match="no attribute 'nothing_of_the_sort'"):
            package.nothing_of_the_sort  # noqa: B018
