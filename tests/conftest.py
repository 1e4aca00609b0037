"""Shared fixtures: each test gets its own SQLite files or PostgreSQL schema, a virtual clock,
and (where it sends e-mail) a real aiosmtpd server on loopback."""

from __future__ import annotations

import fcntl
import functools
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import settings as hypothesis_settings

from engine.adapters.clock import VirtualClock
from engine.application.engine import Engine
from engine.application.journeys.publishing import publish_new
from engine.application.journeys.validation import Definitions
from engine.bootstrap import bootstrap, init_database, load_journey_definitions, renderer_for
from engine.settings import Settings
from tests.e2e.smtp_server import mail_server  # noqa: F401 - the SMTP sink fixture, for every test

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("HUOKE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai

# Property tests: no deadline (this machine is shared and timing is never a test's business) and
# derandomised, so every run is repeatable; HUOKE_HYPOTHESIS=explore searches afresh, ten times wider.
hypothesis_settings.register_profile("huoke", deadline=None, derandomize=True, print_blob=True)
hypothesis_settings.register_profile("explore", deadline=None, max_examples=1000, print_blob=True)
hypothesis_settings.load_profile("explore" if os.environ.get("HUOKE_HYPOTHESIS") == "explore" else "huoke")


def base_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "outbox_dir": tmp_path / "outbox",
        "journeys_dir": ROOT / "journeys",
        "templates_dir": ROOT / "templates",
        "database_url": "",
        "email_transport": "outbox",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


#: Shared by the test processes (pytest-xdist workers) of this machine: see ``pg_schema``.
PG_TURNS = Path(tempfile.gettempdir()) / "huoke-tests-postgresql.lock"


@pytest.fixture
def pg_schema(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL schema, dropped afterwards. The server takes 100 connections: a test
    marked ``pg_heavy`` (several huoke processes or runners at once) has it to itself; the
    others share it."""
    heavy = request.node.get_closest_marker("pg_heavy") is not None
    with PG_TURNS.open("a") as turn:
        fcntl.flock(turn, fcntl.LOCK_EX if heavy else fcntl.LOCK_SH)
        name = f"t_{uuid.uuid4().hex[:12]}"
        try:
            yield name
        finally:
            with psycopg.connect(POSTGRES_URL.replace("postgresql://", "postgres://"), autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _bundled(settings: Settings) -> bool:
    bundled = settings.journeys_dir == ROOT / "journeys" and settings.templates_dir == ROOT / "templates"
    return bundled and settings.config_dir is None


@functools.cache
def _validated_bundle(default_locale: str) -> Definitions:
    return load_journey_definitions(base_settings(Path("/nonexistent"), default_locale=default_locale))


def bundled_definitions(settings: Settings) -> Definitions:
    """The bundled journeys and configuration, validated once per test process (they are the
    same files for every test that uses them; validating templates costs 0.2 s a time)."""
    return _validated_bundle(settings.default_locale)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> str:
    """Run a test once on SQLite files and once on PostgreSQL."""
    return str(request.param)


MakeEngine = Callable[..., Engine]
#: The settings each live engine of a test was built with (by id), for code that takes settings.
_SETTINGS: dict[int, Settings] = {}


def settings_of(engine: Engine) -> Settings:
    """The settings ``make_engine`` built ``engine`` with (its store, folders and secrets)."""
    return _SETTINGS[id(engine)]


@pytest.fixture
def make_engine(tmp_path: Path, clock: VirtualClock, request: pytest.FixtureRequest) -> Iterator[MakeEngine]:
    """Build engines on the test's store; several calls share the store (like restarts)."""
    engines: list[Engine] = []
    store_kind = request.getfixturevalue("store") if "store" in request.fixturenames else "sqlite"
    schema = request.getfixturevalue("pg_schema") if store_kind == "postgres" else ""

    def make(**kwargs: Any) -> Engine:
        overrides = kwargs.pop("settings", {})
        if store_kind == "postgres":
            overrides.setdefault("database_url", f"{POSTGRES_URL}?schema={schema}")
        settings = base_settings(tmp_path, **overrides)
        init_database(settings)
        kwargs.setdefault("definitions", bundled_definitions(settings) if _bundled(settings) else None)
        engine = bootstrap(settings, kwargs.pop("clock", clock), **kwargs)
        definitions = kwargs.get("definitions") or load_journey_definitions(settings)
        publish_new(engine, definitions.journeys, renderer_for(settings).fingerprint(), "test")
        engines.append(engine)
        _SETTINGS[id(engine)] = settings
        return engine

    yield make
    for engine in engines:
        _SETTINGS.pop(id(engine), None)
        engine.close()
