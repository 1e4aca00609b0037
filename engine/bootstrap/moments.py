"""Engines over past moments and sandboxes: views rebuilt from the event log as it stood at a
moment (reused for the same moment), and a scratch store with the lender's models and journeys
for trying a draft."""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from engine.adapters.clock import SystemClock, VirtualClock
from engine.adapters.dry_run import DryRunChannel
from engine.application.engine import Engine
from engine.application.journeys.publishing import publish_new
from engine.application.leads.app import Leads
from engine.application.projecting import replay_until
from engine.bootstrap import (  # noqa: F401 - the composition root this builds on
    VIEWS,
    _app_args,
    bootstrap,
    build_view,
    init_database,
    load_journey_definitions,
    renderer_for,
    store_env,
)
from engine.bootstrap.stores import _view
from engine.domain.journeys.journey import Journey
from engine.domain.leads.segments import SegmentRules
from engine.domain.screening.model_registry import MODEL_KINDS, registry_id
from engine.eventstore.coordination import file_lock
from engine.eventstore.saving import copy_aggregates
from engine.settings import Settings

#: Past moments whose rebuilt views each view keeps (the most recently asked for).
AS_OF_KEPT = 4


@contextmanager
def engine_as_of(
    settings: Settings,
    engine: Engine,
    moment: datetime,
    views: tuple[str, ...] = tuple(VIEWS),
    page: int = 1000,
    keep: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[Engine]:
    """The engine as it stood at ``moment``: the named views rebuilt from the event log (events
    that happened by then, ``page`` at a time) into SQLite files of their own, and a clock stopped
    at ``moment``. The reports read it as they read the live engine; nothing of the live store
    changes.

    With ``keep``, the rebuilt views stay in ``<data dir>/as-of`` (``AS_OF_KEPT`` moments per
    view): asked again for the same moment, a view applies only what the log gained since (an
    event recorded late with an earlier time included), so month-end reports after the first are
    quick. Without, they are built in a temporary folder and dropped. One process at a time uses
    a view's kept moments (others wait for it). ``progress(done, total)`` hears how many log
    positions are replayed of how many there are to replay."""
    with contextlib.ExitStack() as stack:
        if keep:
            folder = settings.data_dir / "as-of"
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="huoke-as-of-")))
        for name in sorted(views):  # always in the same order: two processes never deadlock
            stack.enter_context(file_lock(folder / f"{name}.lock"))
        scratch = settings.model_copy(update={"data_dir": folder, "database_url": ""})
        stamp = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        built: dict[str, Any] = {}
        try:
            for name in views:
                env = {**store_env(scratch, name, create=True), "SQLITE_DBNAME": str(folder / f"{name}-{stamp}.db")}
                built[VIEWS[name]] = _view(scratch, name, env)
            feeds = [(view, getattr(engine, log), topics) for view in built.values() for log, topics in view.feeds]
            total = sum(
                max(0, (app.recorder.max_notification_id() or 0) - (view.max_tracking_id(app.name) or 0))
                for view, app, _ in feeds
            )
            done = 0

            def advance(n: int) -> None:
                nonlocal done
                done += n
                if progress is not None:
                    progress(min(done, total), total)

            for view, app, topics in feeds:
                replay_until(view, app, topics, moment, page, advance)
            if progress is not None and done:
                progress(total, total)  # the log's tail past the last event a view reads
            yield dataclasses.replace(engine, clock=VirtualClock(moment), views_owned=frozenset(), **built)
        finally:
            for view in built.values():
                view.close()
            if keep:
                for name in views:
                    _forget_old_moments(folder, name, stamp)


def _forget_old_moments(folder: Path, name: str, used: str) -> None:
    """Keep the ``AS_OF_KEPT`` moments of view ``name`` asked for most recently (``used`` now);
    called holding the view's lock."""
    (folder / f"{name}-{used}.db").touch()
    kept = sorted(folder.glob(f"{name}-*.db"), key=lambda f: f.stat().st_mtime_ns, reverse=True)
    for old in kept[AS_OF_KEPT:]:
        for part in (old, Path(f"{old}-wal"), Path(f"{old}-shm")):
            part.unlink(missing_ok=True)


def _copy_models(settings: Settings, scratch: Settings, engine: Engine) -> None:
    """The registered models (their registry's events and their files) into a sandbox's store."""
    models = settings.data_dir / "models"
    if models.is_dir():
        shutil.copytree(models, scratch.data_dir / "models", dirs_exist_ok=True)
    target = Leads(store_env(scratch, "leads"), SegmentRules((), (), (), "copy"), SystemClock())
    try:
        copy_aggregates(engine.leads, target, [registry_id(kind) for kind in MODEL_KINDS])
    finally:
        target.close()


@contextmanager
def sandbox(
    settings: Settings,
    journey: Journey,
    raw: dict[str, Any],
    start: datetime,
    others: list[tuple[Journey, dict[str, Any]]] | None = None,
    models_from: Engine | None = None,
) -> Iterator[tuple[Engine, dict[str, DryRunChannel]]]:
    """A throwaway embedded engine for a backtest: SQLite files in a temporary folder, a virtual
    clock at ``start``, ``journey`` published (with ``others``: the journeys it runs beside live,
    which compete with it for a lead's contact caps and spacing), and channels that record instead
    of sending."""
    # The lender's whole configuration (segments, products, contact policy, the desk), as live:
    # product matching, windows and caps decide in the backtest as they would in production.
    beside = [(j, r) for j, r in others or [] if j.id != journey.id]
    definitions = dataclasses.replace(load_journey_definitions(settings, only=[]), journeys=[(journey, raw), *beside])
    with tempfile.TemporaryDirectory(prefix="huoke-sim-") as folder:
        scratch = settings.model_copy(
            update={
                "data_dir": Path(folder) / "data",
                "outbox_dir": Path(folder) / "out",
                "database_url": "",
                # Links in a preview are signed with a throwaway key: shown, but an unsubscribe or
                # tracked link copied from a preview never acts on the real lead.
                "unsubscribe_secret": SecretStr(secrets.token_urlsafe(32)),
                "unsubscribe_old_secrets": SecretStr(""),
            }
        )
        channels = {name: DryRunChannel(name) for name in ("email", "sms", "webhook")}
        init_database(scratch)
        if models_from is not None:  # the lender's scorecards score the leads as they would live
            _copy_models(settings, scratch, models_from)
        engine = bootstrap(scratch, VirtualClock(start), channels=dict(channels), definitions=definitions)
        publish_new(engine, definitions.journeys, renderer_for(scratch).fingerprint(), "simulation")
        try:
            yield engine, channels
        finally:
            engine.close()
