"""Preview: the path one lead would take through a journey if no event intervened (every wait
elapses), with each message rendered as it would be sent.

``live_preview`` runs the engine's own code for it — entry filters, screening and product
matching, the interpreter, the dispatcher's consent, contact windows, spacing and caps — on a
throwaway store and a virtual clock (bootstrap's ``sandbox``); ``preview`` walks the interpreter
alone (kept for the API's quick look)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, assert_never
from uuid import UUID

from engine.application.engine import Engine
from engine.application.leads.commands import CaptureLead, LeadRef, RecordLifecycle
from engine.application.leads.timeline import describe, lead_timeline
from engine.domain.delivery.delivery import Delivery, told
from engine.domain.journeys import interpreter
from engine.domain.journeys.decisions import (
    Branch,
    Context,
    Decision,
    EndWait,
    Exit,
    GoalReached,
    Reach,
    Send,
    SkipSend,
    Split,
    Task,
    Update,
    Wait,
)
from engine.domain.journeys.enrolment import Enrolment
from engine.domain.journeys.journey import Journey
from engine.domain.journeys.lead_journeys import refusals_in
from engine.domain.leads.facts import lead_facts
from engine.domain.leads.lead import Lead
from engine.domain.shared.durations import utc_text


def preview(engine: Engine, journey: Journey, lead_id: UUID, horizon_steps: int = 50) -> list[dict[str, Any]]:
    """The path one lead would take if no event intervened (waits elapse), with each message rendered."""
    lead = engine.leads.get_lead(lead_id)
    now = engine.clock.now()
    ctx = Context(
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
                "say": say(d),
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


def event_time(e: Any) -> datetime:
    moment: datetime = getattr(e, "at", None) or e.timestamp
    return moment


#: The facts that lead to each lifecycle event or stage, in order: what a preview records for a
#: journey entered on that event or on reaching that stage.
_LEADING_TO: dict[str, tuple[str, ...]] = {
    "application_submitted": ("application_submitted",),
    "application_approved": ("application_submitted", "application_approved"),
    "application_declined": ("application_submitted", "application_declined"),
    "loan_funded": ("application_submitted", "application_approved", "loan_funded"),
}
#: The loan amount of a preview's application when the lead's interest names none.
PREVIEW_AMOUNT = "100000"
_STAGE_EVENT = {"applied": "application_submitted", "approved": "application_approved", "funded": "loan_funded"}


def entry_facts(journey: Journey, lead: CaptureLead, lead_id: UUID, at: datetime) -> list[RecordLifecycle]:
    """What a preview records after the capture so that a journey entered on a lifecycle event
    (``application_submitted``, ``loan_funded``…) or on reaching a stage sees its trigger: the
    lead's own application as its interest describes it (loan type, amount, term; 100,000 when it
    names no amount), one minute on."""
    entry, ref = journey.entry, LeadRef(lead_id=lead_id)
    interest = lead.interest or {}
    application = {
        "application_id": "PREVIEW-1",
        "loan_type": str(interest.get("loan_type") or ""),
        "amount": str(interest.get("amount") or PREVIEW_AMOUNT),
    }
    kinds: tuple[str, ...] = ()
    if entry.on == "lifecycle_event" and entry.event:
        kinds = _LEADING_TO.get(entry.event, (entry.event,))
    elif entry.on == "stage_reached" and entry.stage is not None:
        stage = str(entry.stage)
        kinds = _LEADING_TO[_STAGE_EVENT[stage]] if stage in _STAGE_EVENT else ("stage_changed",)
    when = at + timedelta(minutes=1)
    facts = []
    for kind in kinds:
        extra: dict[str, Any] = {}
        if kind.startswith(("application_", "loan_")):
            extra = dict(application)
            if kind == "loan_funded":
                extra["term_months"] = int(interest.get("term_months") or 36)
        elif kind == "stage_changed":
            extra = {"stage": str(entry.stage), "reason": "preview"}
        facts.append(RecordLifecycle(lead=ref, kind=kind, at=when, origin="preview", **extra))  # type: ignore[arg-type]
    return facts


def journey_path(engine: Engine, lead_id: UUID, journey_id: str) -> list[dict[str, Any]]:
    """What happened to a lead in a journey, in time order: its enrolments' events (each step,
    branch, wait and message request) and what became of each message (sent, deferred and why,
    skipped), as the timeline describes them. The same for a preview and for a live store."""
    events: list[Any] = []
    for row in engine.index.enrolments_of(lead_id):
        if row["journey_id"] != journey_id:
            continue  # the journeys beside it ran too (caps), but are not what is asked about
        for e in engine.journeys.enrolment_events(UUID(row["enrolment_id"])):
            events.append(e)
            if isinstance(e, Enrolment.MessageRequested):
                events += [
                    d
                    for stored in engine.deliveries.events.get(e.send_id)
                    for d in told(stored)
                    if not isinstance(d, Delivery.Requested | Delivery.Dispatching)
                ]
    events.sort(key=event_time)
    path = []
    for e in events:
        what, why = describe(e)
        path.append({"at": event_time(e).isoformat(), "event": type(e).__qualname__, "what": what, "why": why})
    return path


def live_preview(
    scratch: Engine, recorded: dict[str, Any], journey: Journey, lead: CaptureLead, days: int
) -> dict[str, Any]:
    """Capture ``lead`` in the sandbox ``scratch`` (its clock at the moment previewed), run ``days``
    on the virtual clock, and tell what happened in ``journey``: entered or refused (and why), each
    step, branch and wait with its reason, and every message as the channel got it, with the
    time it would leave (windows, spacing and caps applied) and why it waited."""
    start = scratch.clock.now()
    [out] = scratch.leads.capture_leads([lead])
    if out.lead_id is None:
        return {"entered": False, "why": out.error or "the lead could not be captured", "path": [], "messages": []}
    trigger = entry_facts(journey, lead, out.lead_id, start)
    if trigger:  # a journey entered on an application, a funding or a stage: that fact, now
        scratch.leads.record_lifecycle(trigger)
    scratch.run(until=start + timedelta(days=days))
    scratch.refresh_views()
    doc = lead_timeline(scratch, out.lead_id)
    mine = journey_path(scratch, out.lead_id, journey.id)
    refused = [
        r
        for e in scratch.journeys.history_events(out.lead_id, scratch.leads.get_lead(out.lead_id).version)
        for r in refusals_in(e)
        if r.journey_id == journey.id
    ]
    messages = []
    for channel in recorded.values():
        for m in channel.messages:
            d = scratch.deliveries.get_delivery(m.send_id)
            if d is None or d.journey_id != journey.id:
                continue
            stored = scratch.deliveries.events.get(m.send_id)
            held = [e.reason for s in stored for e in told(s) if isinstance(e, Delivery.Deferred)]
            messages.append(
                {
                    "at": (d.sent_at or start).isoformat(),
                    "step": d.step,
                    "channel": m.channel,
                    "template": d.template,
                    "held": held,  # why it waited before leaving: contact window, spacing, a cap
                    "subject": m.body.subject,
                    "text": m.body.text,
                    "locale": m.body.locale,
                    "variant": m.body.variant,
                }
            )
    messages.sort(key=lambda m: str(m["at"]))
    lead_now = doc["lead"]
    return {
        "entered": any(t["event"] == "Enrolment.Started" for t in mine),
        "why": refused[0].reason if refused else "",
        "lead": {k: lead_now[k] for k in ("audience", "tier", "segments", "stage", "offer", "scores") if k in lead_now},
        "path": mine,
        "messages": messages,
    }


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


def say(d: Decision) -> str:
    """One interpreter decision in a marketer's words."""
    match d:
        case Reach():
            return f"reach {d.step}"
        case Send():
            return f"send {d.channel} {d.template} (step {d.step})"
        case SkipSend():
            return f"skip {d.step}: {d.reason}"
        case Wait():
            return f"wait at {d.step} until {utc_text(d.due_at)}"
        case EndWait():
            return f"… {d.step} over ({d.outcome})"
        case Branch():
            return f"branch {d.step} → {d.to} ({d.case}: {d.values})"
        case Split():
            return f"split {d.step} → arm {d.arm}"
        case Task():
            return f"{d.kind} task for {d.queue}: {d.note}"
        case Update():
            return f"update lead: stage {d.stage or '—'}, tag {d.tag or '—'}"
        case GoalReached():
            return f"goal {d.stage}"
        case Exit():
            return f"leave: {d.reason} — {d.detail}"
        case _:
            assert_never(d)
