"""Package names imported on first use (PEP 562), not with the package.

Why: ``videodeblur.pipeline`` and ``videodeblur.video`` re-export names whose modules load torch
(2-3 s). The commands import the light modules of those packages (path planning, URL rules) to check
their arguments first, and importing a submodule runs its package's ``__init__``: with eager
re-exports a mistyped path took 3 s to be said, and a Ctrl-C in that time lost ``--json``'s line.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, homes: Mapping[str, tuple[str, ...]]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose names live in its submodules:
    ``homes`` maps a submodule's name to the names it gives the package."""
    home_of = {name: module for module, names in homes.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = home_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # once: later lookups do not come here
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *home_of})

    return __getattr__, __dir__
