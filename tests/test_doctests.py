"""Run every docstring example of the installed package.

Doctests are collected from ``driftline.*`` as imported, never from the
folders, so no module is ever imported twice under two names.
"""

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = [
    "driftline",
    "driftline.schemas",
    "driftline.monitors",
    "driftline.streams",
    "driftline.agents",
]


def modules() -> list[str]:
    """Every module of every package: the editable install maps each folder
    separately, so each package's own path is walked."""
    names = set(PACKAGES)
    for package in PACKAGES:
        path = importlib.import_module(package).__path__
        names.update(info.name for info in pkgutil.walk_packages(path, prefix=f"{package}."))
    return sorted(names)


MODULES = modules()


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_the_walk_finds_every_floor():
    floors = {"driftline.monitors.feature_drift", "driftline.broker", "driftline.cli"}
    assert floors <= set(MODULES)
