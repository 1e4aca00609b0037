"""Preview: the path one lead would take through a journey if no event intervened (every wait
elapses), with each message rendered as it would be sent."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, assert_never
from uuid import UUID

from engine.application.engine import Engine
from engine.domain.journeys import interpreter
from engine.domain.journeys.interpreter import (
    Branch,
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
from engine.domain.journeys.journey import Journey
from engine.domain.leads.facts import lead_facts
from engine.domain.leads.lead import Lead


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
            return f"wait at {d.step} until {d.due_at:%Y-%m-%d %H:%M} UTC"
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
