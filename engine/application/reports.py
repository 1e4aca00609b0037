"""Report queries: plain documents built from the views (the JSON the CLI prints)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from engine.application.engine import Engine
from engine.domain.shared.values import STAGE_ORDER, Audience, Stage

FUNNEL_SCHEMA = "huoke.report.funnel/1"


def funnel_report(engine: Engine) -> dict[str, Any]:
    """Conversion funnel by audience, current stage by source channel, messages per step."""
    reached: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in engine.funnel.reached():
        reached[r["stage"]][r["audience"]] += int(r["leads"])
    audiences = [a.value for a in Audience]
    captured = {a: reached[Stage.NEW.value][a] for a in audiences}
    total_captured = sum(captured.values())
    funnel = []
    for stage in [*STAGE_ORDER, Stage.LOST]:
        by = {a: reached[stage.value][a] for a in audiences}
        total = sum(by.values())
        funnel.append(
            {
                "stage": stage.value,
                "by_audience": by,
                "total": total,
                "rate": round(total / total_captured, 4) if total_captured else 0.0,
            }
        )
    current: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in engine.funnel.stages():
        current[r["source_channel"]][r["stage"]] += int(r["leads"])
    by_source = [
        {"source_channel": src, "stages": dict(stages), "total": sum(stages.values())}
        for src, stages in sorted(current.items())
    ]
    messages: dict[tuple[str, str, str], dict[str, int]] = defaultdict(dict)
    for r in engine.funnel.messages():
        messages[(r["journey_id"], r["step"], r["channel"])][r["outcome"]] = int(r["n"])
    return {
        "schema": FUNNEL_SCHEMA,
        "leads": total_captured,
        "funnel": funnel,
        "by_source_channel": by_source,
        "messages": [
            {
                "journey_id": j,
                "step": s,
                "channel": c,
                **{k: v.get(k, 0) for k in ("sent", "skipped", "failed", "retrying", "held")},
            }
            for (j, s, c), v in sorted(messages.items())
        ],
    }


JOURNEYS_SCHEMA = "huoke.report.journeys/1"


def journeys_report(engine: Engine) -> dict[str, Any]:
    """Per journey and version: entries, refusals, goals (within their window or late), exits,
    split arms, tasks and messages — the outcome counts of the journey index."""
    journeys: dict[tuple[str, int], dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for r in engine.index.outcomes():
        if r["kind"] == "reached":
            continue
        journeys[(r["journey_id"], int(r["journey_version"]))][r["kind"]][r["label"]] = int(r["n"])
    # What became of the messages (sent, skipped, failed, held): the same counts as the funnel
    # report and the outboxes. Per journey (every version), on its latest version's row.
    delivered: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for m in engine.funnel.messages():
        delivered[m["journey_id"]][f"{m['channel']} {m['outcome']}"] += int(m["n"])
    latest = {jid: max(v for j, v in journeys if j == jid) for jid, _ in journeys}
    rows = []
    for (journey_id, version), kinds in sorted(journeys.items()):
        has_goals = bool(engine.journeys.definition(journey_id, version).goals)
        entered = sum(kinds.get("entered", {}).values())
        goals = kinds.get("goal", {})
        within = sum(n for label, n in goals.items() if not label.endswith("(late)"))
        rows.append(
            {
                "journey_id": journey_id,
                "version": version,
                "entered": entered,
                # None: the journey sets no goal (a 0% there would read as failure).
                "conversion_rate": (round(within / entered, 4) if entered else 0.0) if has_goals else None,
                **{
                    kind: dict(sorted(kinds.get(kind, {}).items()))
                    for kind in ("refused", "goal", "exit", "split", "task", "message", "message skipped")
                },
                # "message" counts messages a step requested; "deliveries" what became of them.
                "deliveries": dict(sorted(delivered[journey_id].items())) if version == latest[journey_id] else {},
            }
        )
    return {"schema": JOURNEYS_SCHEMA, "journeys": rows}


def journeys_overview(engine: Engine, definitions: list[tuple[Any, Any]]) -> list[dict[str, Any]]:
    """Published journeys: live version, status, entries so far, leads in them now, and whether
    the file (``definitions``, as loaded) differs from the published version."""
    from engine.application.journeys.publishing import unpublished_changes

    changed = set(unpublished_changes(engine, definitions)) if definitions else set()
    engine.refresh_views()
    engine.journeys.refresh_live()
    entered: dict[str, int] = {}
    for row in engine.index.outcomes():
        if row["kind"] == "entered":
            entered[row["journey_id"]] = entered.get(row["journey_id"], 0) + int(row["n"])
    return [
        {
            "id": jid,
            "name": live.journey.name,
            "version": live.version,
            "status": live.status,
            "entries": entered.get(jid, 0),
            "active": sum(engine.index.step_counts(jid).values()),
            "unpublished_changes": jid in changed,
        }
        for jid, live in sorted(engine.journeys.live.items())
    ]


REFERRALS_SCHEMA = "huoke.report.referrals/1"
#: How a referral is counted: each status includes the later ones it leads to.
#: A referral whose friend's loan was funded: every status decided at funding or after it
#: (``not_qualified`` included: funded, though not rewarded).
FUNDED_REFERRAL = frozenset(
    {"qualified", "not_qualified", "held", "approved", "paid", "capped", "rejected", "clawed_back"}
)


def funded_amount(referral: dict[str, Any]) -> Decimal | None:
    """The friend's funded loan when the referral's friend was funded (rewarded or not): what
    every referral figure counts as funded; None before funding."""
    return Decimal(str(referral["funded_amount"] or 0)) if referral["status"] in FUNDED_REFERRAL else None


def referrals_report(engine: Engine) -> dict[str, Any]:
    """Per programme and month of the referral: referrals made, friends who applied, loans funded
    and their volume, rewards paid (cost to the lender, both sides), held for review, capped,
    clawed back, and the cost per funded referral."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    ledger = engine.ledger.ledger()
    for r in ledger:
        if r["status"] == "refused":
            continue
        key = (r["programme"] or "(not yet qualified)", r["referred_at"][:7])
        row = rows.setdefault(key, {"programme": key[0], "month": key[1], "referrals": 0, "applied": 0, "funded": 0,
                                    "funded_volume": Decimal(0), "paid": 0, "held": 0, "capped": 0,
                                    "clawed_back": 0, "reward_cost": Decimal(0)})  # fmt: skip
        row["referrals"] += 1
        row["applied"] += bool(r.get("applied"))
        if (amount := funded_amount(r)) is not None:
            row["funded"] += 1
            row["funded_volume"] += amount
        if r["status"] in ("paid", "held", "capped", "clawed_back"):
            row[r["status"]] += 1
        if r["status"] == "paid":
            row["reward_cost"] += Decimal(str(r["referrer_reward"]["cost"])) + Decimal(str(r["referee_reward"]["cost"]))
    out = sorted(rows.values(), key=lambda x: (x["programme"], x["month"]))
    for row in out:  # sums kept exact (Decimal); the document carries numbers to the fen
        row["cost_per_funded"] = float(round(row["reward_cost"] / row["funded"], 2)) if row["funded"] else None
        row["funded_volume"], row["reward_cost"] = float(row["funded_volume"]), float(row["reward_cost"])
    refused = sum(1 for r in ledger if r["status"] == "refused")
    return {"schema": REFERRALS_SCHEMA, "by_programme_month": out, "refused_attempts": refused}
