"""The house rules a newcomer relies on, checked: one error hierarchy, and every module where
the layout says it is."""

from __future__ import annotations

import importlib
import pkgutil

import engine
import projections
from engine.domain.shared.errors import HuokeError


def _modules() -> list[object]:
    found = []
    for package in (engine, projections):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            found.append(importlib.import_module(info.name))
    return found


def test_every_error_huoke_defines_is_a_huoke_error() -> None:
    errors = [
        value
        for module in _modules()
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == module.__name__  # type: ignore[attr-defined]
    ]
    assert len(errors) >= 10
    assert [e.__qualname__ for e in errors if not issubclass(e, HuokeError)] == []


def test_the_domain_is_organised_by_bounded_context() -> None:
    import engine.domain

    top = {info.name for info in pkgutil.iter_modules(engine.domain.__path__)}
    assert top == {"shared", "leads", "journeys", "delivery", "screening", "access", "referrals", "marketing"}
