"""Engagement with tracked links, and activity per day."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from engine.application.analytics.common import ALL_LEADS, Scope, _money
from engine.application.engine import Engine
from engine.domain.journeys.journey import SendStep
from engine.domain.shared.values import MILESTONES

# ---- engagement --------------------------------------------------------------------------------

ENGAGEMENT_SCHEMA = "huoke.report.engagement/1"


def engagement_report(engine: Engine, scope: Scope = ALL_LEADS) -> dict[str, Any]:
    """Per send step of every published journey: its template and channel, messages sent, unique
    clicks by people and click-through rate, clicks by scanners (apart: never engagement), opens
    (unreliable), and how many clickers applied after their click."""
    engine.journeys.refresh_live()
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for m in engine.funnel.messages():
        counts[(m["journey_id"], m["step"])][m["outcome"]] += int(m["n"])
    applied = {(r["journey_id"], r["step"]): int(r["applied"] or 0) for r in engine.funnel.clicks_then_applied()}
    last = {(r["journey_id"], r["step"]): int(r["applications"] or 0) for r in engine.funnel.last_clicks()}
    rows: list[dict[str, Any]] = []
    for jid, live in sorted(engine.journeys.live.items()):
        if scope.journey and jid != scope.journey:
            continue
        for step in live.journey.steps.values():
            if not isinstance(step, SendStep) or step.channel not in ("email", "sms"):
                continue
            c = counts.get((jid, step.id), {})
            sent, clicked = c.get("sent", 0), c.get("clicked", 0)
            rows.append(
                {
                    "journey_id": jid,
                    "step": step.id,
                    "template": step.template,
                    "channel": step.channel,
                    "sent": sent,
                    "clicked": clicked,
                    "click_through_rate": round(clicked / sent, 4) if sent else None,
                    "scanner_clicked": c.get("scanner clicked", 0),
                    "opened": c.get("opened", 0) if step.channel == "email" else None,
                    "applied_after_click": applied.get((jid, step.id), 0),
                    # Applications whose applicant's last click before applying was on this message.
                    "last_click_applications": last.get((jid, step.id), 0),
                    # Applications the lender's site reported with this message's link reference.
                    "converted": c.get("converted", 0),
                }
            )
    total_sent = sum(int(r["sent"] or 0) for r in rows)
    total_clicked = sum(int(r["clicked"] or 0) for r in rows)
    return {
        "schema": ENGAGEMENT_SCHEMA,
        "scope": scope.as_dict(),
        "sent": total_sent,
        "clicked": total_clicked,
        "click_through_rate": round(total_clicked / total_sent, 4) if total_sent else None,
        "scanner_clicked": sum(int(r["scanner_clicked"] or 0) for r in rows),
        "steps": rows,
        "notes": [
            "clicked: messages a person clicked at least once (unique clicks); scanner_clicked: clicks by mail "
            "security gateways and link checkers, never counted as engagement",
            "opened: the open pixel was fetched (HUOKE_TRACK_OPENS); unreliable, mail clients fetch it for every "
            "message",
        ],
    }


# ---- over time ---------------------------------------------------------------------------------

DAILY_SCHEMA = "huoke.report.daily/1"
DAILY_MEASURES = ("captured", *MILESTONES, "lost", "loans funded", "funded volume", "sent", "failed", "skipped")


def daily_report(engine: Engine, scope: Scope = ALL_LEADS) -> dict[str, Any]:
    """Each day (the lender's) in scope: leads captured, stages first reached, leads lost, loans
    funded and their volume, messages sent, failed and skipped (of one journey, in scope)."""
    since, until = scope.days
    days: dict[str, dict[str, Any]] = defaultdict(lambda: dict.fromkeys(DAILY_MEASURES, 0))
    for r in engine.funnel.daily(since, until, scope.channel):
        days[r["day"]][r["measure"]] = int(r["n"])
        if r["measure"] == "loans funded":
            days[r["day"]]["funded volume"] = _money(r["amount"] or 0)
    if scope.channel is None:
        for r in engine.funnel.daily_messages(since, until, scope.journey):
            days[r["day"]][r["outcome"]] += int(r["n"])
    series = []
    if days:
        day, last = date.fromisoformat(min(days)), date.fromisoformat(max(days))
        while day <= last:  # every day, the quiet ones included (a chart's gaps are days)
            series.append({"day": day.isoformat(), **days.get(day.isoformat(), dict.fromkeys(DAILY_MEASURES, 0))})
            day += timedelta(days=1)
    totals = {m: (_money(sum(d[m] for d in series)) if m == "funded volume" else sum(d[m] for d in series))
              for m in DAILY_MEASURES}  # fmt: skip
    return {"schema": DAILY_SCHEMA, "scope": scope.as_dict(), "measures": list(DAILY_MEASURES), "days": series,
            "totals": totals}  # fmt: skip
