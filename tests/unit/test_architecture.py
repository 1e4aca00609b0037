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
    return found  # type: ignore[return-value]


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


PERSISTENCE = ("eventsourcing.persistence", "eventsourcing.sqlite", "eventsourcing.postgres", "psycopg", "sqlite3")


def _importers(prefixes: tuple[str, ...], allowed: str) -> list[str]:
    """Every import of a module starting with one of ``prefixes`` in engine and projections, at
    the top or inside a function, outside the file or package ``allowed``."""
    import ast
    from pathlib import Path

    root = Path(engine.__file__).parent.parent
    found = []
    for path in [*root.glob("engine/**/*.py"), *root.glob("projections/**/*.py")]:
        if path.is_relative_to(root / allowed):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            found += [f"{path.relative_to(root)}: {n}" for n in names if n.startswith(prefixes)]
    return found


def test_only_the_event_store_package_imports_the_persistence_modules() -> None:
    """One seam: outside ``engine.eventstore`` no module imports eventsourcing's persistence,
    SQLite or PostgreSQL modules, psycopg or sqlite3 (the import contract covers the drivers;
    eventsourcing's submodules are checked here)."""
    assert _importers(PERSISTENCE, "engine/eventstore") == []


def test_one_http_client_makes_every_outbound_request() -> None:
    """The SMS provider, the webhook channel, webhook subscriptions and the reconcile search all
    go through ``adapters.http_client`` (there were two urllib clients beside it)."""
    assert _importers(("urllib.request", "http.client", "requests", "httpx"), "engine/adapters/http_client.py") == []


#: All the domain may import besides the standard library and itself: eventsourcing's aggregate
#: base and its topic helpers. Anything else (a framework, a driver, a file format) is I/O.
DOMAIN_MAY_IMPORT = ("eventsourcing.domain", "eventsourcing.utils", "engine.domain")


def test_the_domain_imports_only_what_an_allow_list_names() -> None:
    """The purity rule as an allow-list (a block-list missed fastapi, pydantic, cryptography and
    twilio): the standard library, eventsourcing's domain module, the domain itself."""
    import ast
    import sys
    from pathlib import Path

    root = Path(engine.__file__).parent
    found = []
    for path in (root / "domain").glob("**/*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            found += [
                f"{path.relative_to(root)}: {n}"
                for n in names
                if n.split(".")[0] not in sys.stdlib_module_names and not n.startswith(DOMAIN_MAY_IMPORT)
            ]
    assert found == []
