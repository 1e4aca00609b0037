"""Small builders shared by tests."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from engine.application.engine import Engine
from engine.application.leads.commands import CaptureLead, LeadRef, RecordLifecycle
from engine.domain.delivery.delivery import Delivery

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CONFIG = ROOT / "journeys" / "config"
ALL_CONFIG = ("segments.yaml", "products.yaml", "contact_policy.yaml")


def journeys_folder(root: Path, config: Iterable[str] = ("segments.yaml",), **journeys: str) -> Path:
    """A journeys folder for a test: the named bundled configuration files in ``config/`` and
    each keyword's (dedented) YAML as ``<name>.yaml``."""
    folder = root / "journeys"
    (folder / "config").mkdir(parents=True, exist_ok=True)
    for name in config:
        shutil.copy(BUNDLED_CONFIG / name, folder / "config" / name)
    for name, text in journeys.items():
        (folder / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


def welcome_then_follow_up(journey_id: str) -> str:
    """A journey of two e-mails: a welcome, then a follow-up eight hours later."""
    return f"id: {journey_id}\n" + WELCOME_THEN_FOLLOW_UP


WELCOME_THEN_FOLLOW_UP = """name: A welcome, then a follow-up eight hours later
locales: [zh-CN, en]
entry: {on: lead_captured}
vars: {apply_url: "https://lender.example/apply", hotline: 400-800-8888}
start: welcome
steps:
  - id: welcome
    send: {channel: email, template: yp_quick_apply}
    next: wait_8h
  - id: wait_8h
    wait: 8h
    next: follow_up
  - id: follow_up
    send: {channel: email, template: yp_finish_application}
"""


TEST_LINK_KEY = "test-link-key-0123456789abcdefghijklmnop"
#: Services refuse weak secrets: tests set their own (never used outside tests).
SERVICE_SECRETS = {
    "HUOKE_UNSUBSCRIBE_SECRET": TEST_LINK_KEY,
    "HUOKE_SUPPRESSION_PEPPER": "test-suppression-pepper-0123456789abcdef",
}


def cli_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, journeys: Path = ROOT / "journeys") -> None:
    """HUOKE_ settings for CLI tests: SQLite files and the outbox in ``tmp_path``."""
    for key, value in {
        "HUOKE_DATA_DIR": tmp_path / "data",
        "HUOKE_OUTBOX_DIR": tmp_path / "outbox",
        "HUOKE_JOURNEYS_DIR": journeys,
        "HUOKE_TEMPLATES_DIR": ROOT / "templates",
        "HUOKE_DATABASE_URL": "",
        "HUOKE_EMAIL_TRANSPORT": "outbox",
        **SERVICE_SECRETS,
    }.items():
        monkeypatch.setenv(key, str(value))


def young_pro(n: int = 1, **overrides: Any) -> CaptureLead:
    fields: dict[str, Any] = {
        "source": {"channel": "web_form", "external_id": f"W{n}"},
        "contact": {
            "name": f"Alex Chen{n}",
            "phone": f"+861380013{n:04d}",
            "email": f"alex{n}@example.com",
            "language": "en",
        },
        "profile": {
            "birth_year": 1996,
            "employment_type": "salaried",
            "employer_kind": "large_private",
            "monthly_income": "25000",
        },
        "interest": {"loan_type": "consumer", "amount": "80000"},
        "consents": {"email": True, "sms": True},
    }
    fields.update(overrides)
    return CaptureLead(**fields)


def senior(n: int = 1, email: str | None = None) -> CaptureLead:
    return CaptureLead(
        source={"channel": "offline_fair", "external_id": f"F{n}"},
        contact={"name": f"王建国{n}", "phone": f"+861390013{n:04d}", "email": email, "language": "zh-CN"},
        profile={"birth_year": 1956, "employment_type": "retired"},
        interest={"loan_type": "renovation"},
        consents={"sms": True, **({"email": True} if email else {})},
    )


def lifecycle(kind: str, ref: CaptureLead, at: datetime, **fields: Any) -> RecordLifecycle:
    return RecordLifecycle(
        lead=LeadRef(source_channel=ref.source["channel"], external_id=ref.source["external_id"]),
        kind=kind,  # type: ignore[arg-type]
        at=at,
        **fields,
    )  # type: ignore[arg-type]


def count_calls(monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> list[int]:
    """Spy on ``target.name``: each call appends to the returned list, then runs the original."""
    real = getattr(target, name)
    calls: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, counted)
    return calls


def sms_lines(outbox: Path) -> list[dict[str, Any]]:
    path = outbox / "sms.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def emails(outbox: Path) -> list[Path]:
    return sorted((outbox / "email").glob("*.eml")) if (outbox / "email").exists() else []


def sms_in_doubt(engine: Engine, lead_id: UUID) -> Delivery:
    """The lead's first SMS, requested and marked as leaving — and then the process dies."""
    engine.journeys.process_lead_events(engine.leads, engine.parts)
    sms = next(d for d in requested_deliveries(engine) if d.lead_id == lead_id and d.channel == "sms")
    leaving = sms.requested_dispatching(engine.clock.now())  # what the dispatcher commits first
    engine.deliveries.save(leaving)
    return leaving


def requested_deliveries(engine: Engine) -> list[Delivery]:
    """The deliveries of every message the journeys requested, as the dispatcher takes them up
    (not stored)."""
    from engine.application.delivery.base import REQUESTED_TOPICS

    notes = engine.journeys.recorder.select_notifications(start=None, limit=100_000, topics=REQUESTED_TOPICS)
    return engine.deliveries.requested_deliveries(
        [engine.journeys.mapper.to_domain_event(n) for n in notes], engine.journeys
    )
