"""Names of a package imported from their module only when first asked for.

A package's ``__init__`` lists its public names; some live in modules that
load faust or the Kafka clients, which most importers never need (the
intake, a replay, the client). :func:`lazy_names` makes the package's
module-level ``__getattr__`` (PEP 562) import those on first use.

>>> __getattr__ = lazy_names("example", {"sqrt": "math"})
>>> __getattr__("sqrt")(9.0)
3.0
>>> __getattr__("cbrt")
Traceback (most recent call last):
...
AttributeError: module 'example' has no attribute 'cbrt'
"""

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, modules: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each name of ``modules`` (name:
    module) from its module when first asked for, and refuses any other name."""

    def attribute(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return attribute
