"""Backtests and previews: run a journey version over sample or historical leads on a virtual
clock in a throwaway store, with channels that record instead of send."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from engine.adapters.clock import VirtualClock
from engine.adapters.dry_run import DryRunChannel
from engine.application.engine import Engine
from engine.application.journeys.app import LIFECYCLE
from engine.application.journeys.publishing import publish_new
from engine.application.journeys.validation import Definitions
from engine.application.leads.commands import CaptureLead, LeadRef, RecordLifecycle
from engine.bootstrap import bootstrap, init_database, load_journey_definitions, renderer_for
from engine.domain.journeys import interpreter
from engine.domain.journeys.interpreter import Decision, Send, Wait
from engine.domain.journeys.journey import Journey
from engine.domain.leads.facts import lead_facts
from engine.domain.leads.lead import Lead
from engine.settings import Settings

SIM_SCHEMA = "huoke.simulation/1"


@dataclass(frozen=True)
class Arrival:
    """A lead or a lifecycle fact arriving at a moment of the simulation."""

    at: datetime
    command: CaptureLead | RecordLifecycle


def arrivals_from_store(engine: Engine, since: datetime | None) -> list[Arrival]:
    """Historical leads (as first captured, with their consents) and their lifecycle facts."""
    out: list[Arrival] = []
    topics = [get_topic(Lead.Captured)]
    start = None
    while True:
        notes = engine.leads.recorder.select_notifications(
            start=start, limit=1000, topics=topics, inclusive_of_start=False
        )
        if not notes:
            break
        start = notes[-1].id
        for note in notes:
            lead = engine.leads.get_lead(UUID(str(note.originator_id)))
            if since is not None and lead.captured_at < since:
                continue
            out.append(Arrival(lead.captured_at, _recapture(engine, lead)))
            out += _lifecycle_of(engine, lead)
    return out


def _recapture(engine: Engine, lead: Lead) -> CaptureLead:
    """The lead as first captured: consents given at capture (later changes are replayed as facts)."""
    consents: dict[str, bool] = {
        e.channel: True
        for e in engine.leads.events.get(lead.id)
        if isinstance(e, Lead.ConsentGranted) and e.purpose == "marketing" and e.at <= lead.captured_at
    }
    return CaptureLead(
        source=lead.source,
        contact=lead.contact,
        profile=lead.profile,
        interest=lead.interest,
        consents=consents,
        contact_issues=tuple(lead.contact_issues),
        captured_at=lead.captured_at,
        origin="store",
    )


def _lifecycle_of(engine: Engine, lead: Lead) -> list[Arrival]:
    ref = LeadRef(lead_id=lead.id)
    out = []
    for stored in engine.leads.events.get(lead.id):
        e: Any = stored
        if type(e) in LIFECYCLE:
            out.append(
                Arrival(
                    e.at,
                    RecordLifecycle(
                        lead=ref,
                        kind=LIFECYCLE[type(e)],  # type: ignore[arg-type]
                        at=e.at,
                        application_id=e.application_id,
                        loan_type=getattr(e, "loan_type", ""),
                        amount=getattr(e, "amount", ""),
                        reason=getattr(e, "reason", ""),
                        days_past_due=getattr(e, "days_past_due", 0),
                        term_months=getattr(e, "term_months", 0),
                    ),
                )
            )
        elif isinstance(e, Lead.StageChanged) and e.to_stage in ("engaged", "lost") and "application" not in e.reason:
            out.append(
                Arrival(
                    e.at, RecordLifecycle(lead=ref, kind="stage_changed", at=e.at, stage=e.to_stage, reason=e.reason)
                )
            )
        elif isinstance(e, Lead.ConsentGranted) and e.at > lead.captured_at:
            out.append(
                Arrival(
                    e.at,
                    RecordLifecycle(lead=ref, kind="consent_granted", at=e.at, channel=e.channel, reason=e.evidence),
                )
            )
        elif isinstance(e, Lead.ConsentWithdrawn):
            out.append(
                Arrival(
                    e.at,
                    RecordLifecycle(lead=ref, kind="consent_withdrawn", at=e.at, channel=e.channel, reason=e.evidence),
                )
            )
    return out


def simulate(
    settings: Settings, journey: Journey, raw: dict[str, Any], version: int, arrivals: list[Arrival], days: int
) -> dict[str, Any]:
    """Run one journey version over ``arrivals`` for ``days`` after the first; nothing is sent."""
    rules = load_journey_definitions(settings).rules
    ordered = sorted(arrivals, key=lambda a: (a.at, isinstance(a.command, RecordLifecycle)))
    start = ordered[0].at if ordered else datetime.now().astimezone()
    end = start + timedelta(days=days)
    with tempfile.TemporaryDirectory(prefix="huoke-sim-") as folder:
        sandbox = settings.model_copy(
            update={"data_dir": Path(folder) / "data", "outbox_dir": Path(folder) / "out", "database_url": ""}
        )
        channels = {name: DryRunChannel(name) for name in ("email", "sms", "webhook")}
        init_database(sandbox)
        engine = bootstrap(
            sandbox,
            VirtualClock(start),
            channels=dict(channels),
            definitions=Definitions([(journey, raw)], rules),
        )
        publish_new(engine, [(journey, raw)], renderer_for(sandbox).fingerprint(), "simulation")
        try:
            for arrival in ordered:
                if arrival.at > end:
                    break
                engine.run(until=arrival.at)
                if isinstance(arrival.command, CaptureLead):
                    engine.leads.capture_leads([arrival.command])
                else:
                    engine.leads.record_lifecycle([arrival.command])
            engine.run(until=end)
            engine.refresh_views()
            return _report(engine, journey, version, days, channels)
        finally:
            engine.close()


def _report(
    engine: Engine, journey: Journey, version: int, days: int, channels: dict[str, DryRunChannel]
) -> dict[str, Any]:
    by_kind: dict[str, dict[str, int]] = defaultdict(dict)
    for row in engine.index.outcomes(journey.id):
        by_kind[row["kind"]][row["label"]] = int(row["n"])
    sent: dict[tuple[str, str], int] = defaultdict(int)
    for row in engine.funnel.messages():
        if row["outcome"] == "sent":
            sent[(row["channel"], row["step"])] += int(row["n"])
    templates = {s.id: s.template for s in journey.sends()}
    return {
        "schema": SIM_SCHEMA,
        "journey_id": journey.id,
        "version": version,
        "days": days,
        "leads": funnel_leads(engine),
        "entered": sum(by_kind["entered"].values()),
        "refused": by_kind["refused"],
        "steps": {s: by_kind["reached"].get(s, 0) for s in journey.steps},
        "messages": [
            {"channel": c, "step": s, "template": templates.get(s, ""), "would_send": n}
            for (c, s), n in sorted(sent.items())
        ],
        "skipped": {row["step"]: int(row["n"]) for row in engine.funnel.messages() if row["outcome"] == "skipped"},
        "goals": by_kind["goal"],
        "exits": by_kind["exit"],
        "splits": by_kind["split"],
        "tasks": by_kind["task"],
        "recorded_not_sent": sum(len(ch.messages) for ch in channels.values()),
    }


def funnel_leads(engine: Engine) -> int:
    return sum(int(r["leads"]) for r in engine.funnel.stages())


def preview(engine: Engine, journey: Journey, lead_id: UUID, horizon_steps: int = 50) -> list[dict[str, Any]]:
    """The path one lead would take if no event intervened (waits elapse), with each message rendered."""
    lead = engine.leads.get_lead(lead_id)
    now = engine.clock.now()
    ctx = interpreter.Context(
        lead_id=str(lead.id),
        journey_id=journey.id,
        facts=lead_facts(lead, now),
        now=now,
        tz=engine.journeys.default_tz,
        entered_at=now,
    )
    path: list[dict[str, Any]] = []
    decisions: list[Decision] = interpreter.start(journey, ctx)
    for _ in range(horizon_steps):
        for d in decisions:
            item: dict[str, Any] = {
                "at": ctx.now.isoformat(),
                "decision": type(d).__name__,
                **{k: v.isoformat() if isinstance(v, datetime) else v for k, v in vars(d).items()},
            }
            if isinstance(d, Send):
                item["message"] = _render(engine, lead, journey, d, ctx.now)
            path.append(item)
        last = decisions[-1] if decisions else None
        if not isinstance(last, Wait):
            break
        ctx = replace(ctx, now=last.due_at, facts=lead_facts(lead, last.due_at))
        decisions = interpreter.resume(journey, last.step, ctx)
    return path


def _render(engine: Engine, lead: Lead, journey: Journey, send: Send, now: datetime) -> dict[str, Any]:
    try:
        body = engine.deliveries.render_for(lead, send.channel, send.template, journey.vars, now)
    except Exception as e:
        return {"error": str(e)}
    return {
        "subject": body.subject,
        "text": body.text,
        "locale": body.locale,
        "variant": body.variant,
        "refusal": engine.deliveries.policy_refusal(lead, send.channel, journey.purpose),
    }
