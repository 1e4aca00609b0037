"""Backtests: replay leads and their lifecycle facts (from the store or from files) through one
journey version on a virtual clock, in a throwaway engine whose channels record instead of send
(bootstrap's ``sandbox``), and report what would have happened."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from engine.application.engine import Engine
from engine.application.journeys.triggers import LIFECYCLE
from engine.application.leads.commands import CaptureLead, LeadRef, RecordLifecycle
from engine.domain.journeys.journey import Journey
from engine.domain.leads.lead import Lead, told
from engine.domain.shared.errors import HuokeError
from engine.domain.shared.money import amount_text
from engine.domain.shared.values import DeliveryOutcome

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
        for stored in engine.leads.events.get(lead.id)
        for e in told(stored)  # consents given with the capture are recorded in it
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


def lead_as_capture(engine: Engine, lead: Lead) -> CaptureLead:
    """The lead as it stands now, as a capture: its contact, profile and interest, and its
    marketing consents in force now (a preview starts it in a journey from this)."""
    consents = {channel: bool(lead.consents.get(f"{channel}:marketing")) for channel in ("email", "sms", "phone")}
    return CaptureLead(
        source=lead.source,
        contact=lead.contact,
        profile=lead.profile,
        interest=lead.interest,
        consents={k: v for k, v in consents.items() if v},
        contact_issues=tuple(lead.contact_issues),
        origin="preview",
    )


#: Where a lead fact a marketer may set for a preview lives in a capture (``--set field=value``).
SETTABLE: dict[str, tuple[str, str]] = {
    "name": ("contact", "name"),
    "full_name": ("contact", "name"),
    "phone": ("contact", "phone"),
    "email": ("contact", "email"),
    "language": ("contact", "language"),
    "timezone": ("contact", "timezone"),
    "source_channel": ("source", "channel"),
    "partner": ("source", "partner"),
    "campaign": ("source", "campaign"),
    "loan_type": ("interest", "loan_type"),
    "loan_amount": ("interest", "amount"),
    "loan_term_months": ("interest", "term_months"),
    "loan_purpose": ("interest", "purpose"),
    "collateral_value": ("interest", "collateral_value"),
    **{
        f: ("profile", f)
        for f in (
            "birth_year",
            "employment_type",
            "employer_kind",
            "employer",
            "monthly_income",
            "monthly_debt",
            "currency",
            "region",
            "city",
            "industry",
            "business_name",
            "business_years",
            "business_revenue",
        )
    },
}


def hypothetical_lead(language: str) -> CaptureLead:
    """A lead that exists only in a preview: consents given, reachable on every channel."""
    return CaptureLead(
        source={"channel": "web_form", "external_id": "preview"},
        contact={"name": "Preview Lead", "phone": "+8613800000000", "email": "preview@lender.example",
                 "language": language},
        profile={},
        interest={},
        consents={"email": True, "sms": True, "phone": True},
        origin="preview",
    )  # fmt: skip


def with_facts(capture: CaptureLead, sets: list[str]) -> CaptureLead:
    """The capture with ``field=value`` settings applied (``consent_email=no`` withdraws one);
    ``ValueError`` names a setting it cannot apply."""
    sections = {k: dict(getattr(capture, k)) for k in ("source", "contact", "profile", "interest")}
    consents = dict(capture.consents)
    for item in sets:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--set {item!r}: expected field=value, e.g. monthly_income=30000")
        if name.startswith("consent_") and name[8:] in ("email", "sms", "phone"):
            consents[name[8:]] = value.strip().lower() in ("yes", "true", "1", "y")
            continue
        if name not in SETTABLE:
            raise ValueError(f"--set {name}: not a fact a lead is captured with (one of {', '.join(sorted(SETTABLE))})")
        section, key = SETTABLE[name]
        sections[section][key] = value.strip()
    return CaptureLead(
        source=sections["source"],
        contact=sections["contact"],
        profile=sections["profile"],
        interest=sections["interest"],
        consents=consents,
        contact_issues=capture.contact_issues,
        origin=capture.origin,
    )


#: The stage changes the engine makes itself from a replayed fact (an application declined, a
#: journey's update step); the others (reported by the lender, a click) are replayed as facts. A
#: lender's reason that merely mentions an application ("clicked the application link") is one.
_DERIVED = re.compile(r"application \S+ (submitted|approved|declined: .*)$|loan \S+ funded$|journey step '.*'$")


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
                        amount=amount_text(getattr(e, "amount", None)),
                        reason=getattr(e, "reason", ""),
                        days_past_due=getattr(e, "days_past_due", 0),
                        term_months=getattr(e, "term_months", 0),
                    ),
                )
            )
        elif isinstance(e, Lead.StageChanged) and e.to_stage in ("engaged", "lost") and not _DERIVED.match(e.reason):
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


def ordered(arrivals: list[Arrival]) -> list[Arrival]:
    """Arrivals in time order, each lead before the facts recorded at the same moment."""
    return sorted(arrivals, key=lambda a: (a.at, isinstance(a.command, RecordLifecycle)))


def first_moment(arrivals: list[Arrival]) -> datetime:
    """Where a simulation's virtual clock starts: the first arrival (now when there is none)."""
    return ordered(arrivals)[0].at if arrivals else datetime.now().astimezone()


def replay(
    engine: Engine, journey: Journey, version: int, arrivals: list[Arrival], days: int, recorded: dict[str, Any]
) -> dict[str, Any]:
    """Run the sandbox ``engine`` (one journey published, channels in ``recorded`` that record
    instead of sending) over ``arrivals`` for ``days`` after the first; report what happened."""
    start = first_moment(arrivals)
    end = start + timedelta(days=days)
    for arrival in ordered(arrivals):
        if arrival.at > end:
            break
        engine.run(until=arrival.at)
        if isinstance(arrival.command, CaptureLead):
            engine.leads.capture_leads([arrival.command])
        else:
            engine.leads.record_lifecycle([arrival.command])
    engine.run(until=end)
    engine.refresh_views()
    return _report(engine, journey, version, days, recorded)


def _report(engine: Engine, journey: Journey, version: int, days: int, channels: dict[str, Any]) -> dict[str, Any]:
    by_kind: dict[str, dict[str, int]] = defaultdict(dict)
    for row in engine.index.outcomes(journey.id):
        by_kind[row["kind"]][row["label"]] = int(row["n"])
    sent: dict[tuple[str, str], int] = defaultdict(int)
    for row in engine.funnel.messages():
        if row["outcome"] == DeliveryOutcome.SENT:
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
        "skipped": {
            row["step"]: int(row["n"]) for row in engine.funnel.messages() if row["outcome"] == DeliveryOutcome.SKIPPED
        },
        "goals": by_kind["goal"],
        "exits": by_kind["exit"],
        "splits": by_kind["split"],
        "tasks": by_kind["task"],
        "recorded_not_sent": sum(len(ch.messages) for ch in channels.values()),
    }


def funnel_leads(engine: Engine) -> int:
    return sum(int(r["leads"]) for r in engine.funnel.stages())


def arrivals_from_rows(
    leads: Iterable[tuple[int, dict[str, Any] | str]],
    events: Iterable[tuple[int, dict[str, Any] | str]],
    parse_lead: Callable[[dict[str, Any], str], Any],
    parse_event: Callable[[dict[str, Any], str], Any],
    origin: tuple[str, str],
    now: datetime,
) -> list[Arrival]:
    """Lead and lifecycle rows (the import formats) as a backtest's arrivals, in the order given;
    a row the import would refuse is skipped (``huoke leads import`` reports it)."""
    out: list[Arrival] = []
    for rows, parse, name in ((leads, parse_lead, origin[0]), (events, parse_event, origin[1])):
        for line, row in rows:
            if isinstance(row, str):
                continue
            try:
                cmd = parse(row, f"{name}:{line}")
            except (ValueError, HuokeError):
                continue
            moment = cmd.captured_at if isinstance(cmd, CaptureLead) else cmd.at
            out.append(Arrival(moment or now, cmd))
    return out
