"""What a lender's marketing team reads: attribution, cost and return, lift of splits with its
confidence, daily trends, score bands, journey flows and the officers' task queues.

Every count comes from the views (projections of the event log); each report is a plain
document (the JSON the CLI prints, the API returns and the dashboard draws). ``Scope`` narrows a
report to the leads captured in a date range (the lender's days), one source channel or one
journey; the cost report spreads each cost evenly over its period's days and sets the part in
scope against the leads captured in those days.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from engine.application.engine import Engine
from engine.application.marketing import Cost
from engine.application.screening.models import monitoring_history
from engine.domain.journeys.journey import SendStep, SplitStep
from engine.domain.marketing.costs import DIMENSIONS, parse_period
from engine.domain.marketing.lift import Lift
from engine.domain.screening.model_registry import CALIBRATION_MIN_ROWS, MODEL_KINDS, calibration_warnings
from engine.domain.screening.uplift import PERSUADABLE, UPLIFT, uplift_kind
from engine.domain.shared.money import Money
from engine.domain.shared.values import MILESTONES

MEASURES = ("leads", *MILESTONES, "loans", "volume")


@dataclass(frozen=True)
class Scope:
    """Which leads a report counts: captured ``since``..``until`` (the lender's days, inclusive),
    attributed to one source ``channel`` (by ``touch``: each lead's first or last; the daily
    activity and score bands go by the first), and (where a report is per journey) one
    ``journey``."""

    since: date | None = None
    until: date | None = None
    channel: str | None = None
    journey: str | None = None
    touch: str = "first"

    @property
    def days(self) -> tuple[str | None, str | None]:
        return (
            self.since.isoformat() if self.since else None,
            self.until.isoformat() if self.until else None,
        )

    def as_dict(self) -> dict[str, Any]:
        since, until = self.days
        return {"since": since, "until": until, "channel": self.channel, "journey": self.journey, "touch": self.touch}


#: Every lead, first touch (the reports' default scope).
ALL_LEADS = Scope()


def _rate(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0


def _money(value: Decimal | float) -> float:
    return float(round(Decimal(str(value)), 2))


def _totals(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(MEASURES, 0)
    out["volume"] = Decimal(0)
    out["multi_touch"] = 0
    for r in rows:
        for m in (*MEASURES, "multi_touch"):
            if m == "volume":
                out[m] += Decimal(str(r[m] or 0))
            else:
                out[m] += int(r[m] or 0)
    return out


def _measures(acc: dict[str, Any]) -> dict[str, Any]:
    leads = acc["leads"]
    return {
        **{m: acc[m] for m in ("leads", *MILESTONES, "loans")},
        "funded_volume": _money(acc["volume"]),
        "multi_touch": acc["multi_touch"],
        "contact_rate": _rate(acc["contacted"], leads),
        "application_rate": _rate(acc["applied"], leads),
        "approval_rate": _rate(acc["approved"], acc["applied"]),
        "funded_rate": _rate(acc["funded"], leads),
    }


# ---- attribution -------------------------------------------------------------------------------

ATTRIBUTION_SCHEMA = "huoke.report.attribution/1"


def attribution_report(engine: Engine, scope: Scope = ALL_LEADS) -> dict[str, Any]:
    """The funnel (captured → contacted → engaged → applied → approved → funded, and funded
    volume) by each attribution dimension: source channel, partner, campaign, UTM source, medium
    and campaign, offline event — by the first or the last touch of each lead."""
    since, until = scope.days
    cube = engine.funnel.cube(scope.touch, since, until, scope.channel)
    by: dict[str, dict[str, list[dict[str, Any]]]] = {d: defaultdict(list) for d in DIMENSIONS}
    for row in cube:
        for d in DIMENSIONS:
            by[d][row[d]].append(row)
    dimensions = {}
    for d in DIMENSIONS:
        rows = [{"value": v or "(none)", **_measures(_totals(rs))} for v, rs in by[d].items()]
        rows.sort(key=lambda r: (-r["leads"], r["value"]))
        dimensions[d] = rows
    return {
        "schema": ATTRIBUTION_SCHEMA,
        "scope": scope.as_dict(),
        "total": _measures(_totals(cube)),
        "dimensions": dimensions,
        "last_click_messages": _last_click_messages(engine),
    }


def _last_click_messages(engine: Engine) -> list[dict[str, Any]]:
    """Applications by the message whose tracked link the applicant clicked last before applying
    (all leads: a message is not a capture-time dimension), with those the lender's site reported
    through the link's reference (exact)."""
    exact: dict[tuple[str, str], int] = defaultdict(int)
    for m in engine.funnel.messages():
        if m["outcome"] == "converted":
            exact[(m["journey_id"], m["step"])] += int(m["n"])
    rows = {(r["journey_id"], r["step"]): int(r["applications"] or 0) for r in engine.funnel.last_clicks()}
    keys = sorted(set(rows) | set(exact))
    found = [{"journey_id": j, "step": s, "applications": rows.get((j, s), 0), "reported": exact.get((j, s), 0)}
             for j, s in keys]  # fmt: skip
    return sorted(found, key=lambda r: (-r["applications"], r["journey_id"], r["step"]))


# ---- costs and return on spend -----------------------------------------------------------------

COSTS_SCHEMA = "huoke.report.costs/1"


def referral_costs(engine: Engine) -> list[Cost]:
    """The rewards referral programmes paid (both sides), per programme and month of referral,
    as costs of the ``referral`` channel."""
    from engine.application.reports import referrals_report

    out = []
    for row in referrals_report(engine)["by_programme_month"]:
        if row["reward_cost"]:
            out.append(
                Cost(
                    "channel",
                    "referral",
                    parse_period(row["month"]),
                    Decimal(str(row["reward_cost"])),
                    "",
                    f"rewards of programme {row['programme']}",
                    REWARDS,
                )
            )
    return out


#: The source of the costs that are referral rewards.
REWARDS = "referral ledger"


def _referral_totals(engine: Engine, scope: Scope) -> dict[str, Any]:
    """Referrals made in the scope's days (by the day referred), as a cost line's measures:
    ``leads`` the friends referred, ``applied`` and ``funded`` (rewarded or not) as report
    referrals counts them, ``volume`` their funded loans."""
    from engine.application.reports import funded_amount

    since, until = scope.days
    out = _totals(())
    for r in engine.ledger.ledger():
        day = r["referred_at"][:10]
        if r["status"] == "refused" or (since and day < since) or (until and day > until):
            continue
        out["leads"] += 1
        out["applied"] += bool(r.get("applied"))
        if (amount := funded_amount(r)) is not None:
            out["funded"] += 1
            out["loans"] += 1
            out["volume"] += amount
    return out


def _cost_per(spend: Decimal, n: int) -> float | None:
    return _money(spend / n) if n else None


def _roi(spend: Decimal, volume: Decimal, margin: Decimal) -> float | None:
    """Return on spend: (funded volume × margin − spend) / spend."""
    return round(float((volume * margin - spend) / spend), 4) if spend else None


def costs_report(
    engine: Engine, costs: list[Cost], margin: Decimal, currency: str, scope: Scope = ALL_LEADS
) -> dict[str, Any]:
    """Spend (the part of each cost's period within the scope's dates), and against it the leads
    captured in those days under that campaign, partner, channel or event: cost per lead, per
    application and per funded loan, and return on spend at ``margin`` of the funded volume.
    Referral rewards join as the ``referral`` channel's cost."""
    since, until = scope.days
    everyone = engine.funnel.cube(scope.touch, since, until, None)  # spend is shared out over all channels
    cube = [r for r in everyone if not scope.channel or r["channel"] == scope.channel]
    entries = []
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    channel_spend: dict[str, Decimal] = defaultdict(Decimal)
    for cost in [*costs, *referral_costs(engine)]:
        # The part of the cost's period within the scope's days, in whole fen (Money is exact).
        in_scope = Money(cost.amount, cost.currency).prorate(
            cost.period.overlap(scope.since, scope.until), cost.period.days
        )
        first, last = cost.period.start.isoformat(), cost.period.end.isoformat()
        rows = [r for r in everyone if r[cost.kind] == cost.name and first <= r["day"] <= last]
        # The spend goes to the channels its leads came through, in proportion to their leads
        # (all of it to its own channel when it bought none); the shares add up to it exactly.
        per_channel: dict[str, int] = defaultdict(int)
        for r in rows:
            per_channel[r["channel"]] += int(r["leads"])
        total = sum(per_channel.values())
        shares = (
            in_scope.allocate(per_channel)
            if total
            else {cost.name if cost.kind == "channel" else "(no leads)": in_scope}
        )
        parts = {ch: m.amount for ch, m in shares.items()}
        if scope.channel:
            parts = {ch: v for ch, v in parts.items() if ch == scope.channel}
            rows = [r for r in rows if r["channel"] == scope.channel]
            if not parts:
                continue
        for ch, v in parts.items():
            channel_spend[ch] += v
        spend = sum(parts.values(), Decimal(0))
        entries.append({**cost.as_dict(), "spend_in_scope": _money(spend), **_measures(_totals(rows))})
        key = by_key.setdefault(
            (cost.kind, cost.name),
            {"kind": cost.kind, "name": cost.name, "spend": Decimal(0), "rows": {}, "rewards": False},
        )
        key["rewards"] = key["rewards"] or cost.source == REWARDS
        key["spend"] += spend
        # A campaign's costs may overlap in time (a monthly fee, a one-off): each lead once.
        key["rows"].update({(r["day"], *(r[d] for d in DIMENSIONS)): r for r in rows})
    table = []
    for key in by_key.values():
        # The referral programme's rewards are set against its referrals (the figures of report
        # referrals), not against the leads whose first touch was the referral channel.
        acc = _referral_totals(engine, scope) if key["rewards"] else _totals(key["rows"].values())
        spend = key["spend"]
        table.append(
            {
                "kind": key["kind"],
                "name": key["name"],
                "spend": _money(spend),
                **_measures(acc),
                "cost_per_lead": _cost_per(spend, acc["leads"]),
                "cost_per_application": _cost_per(spend, acc["applied"]),
                "cost_per_funded": _cost_per(spend, acc["funded"]),
                "return_on_spend": _roi(spend, acc["volume"], margin),
            }
        )
    table.sort(key=lambda r: (-r["spend"], r["kind"], r["name"]))
    channels: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in cube:
        channels[r["channel"]].append(r)
    by_channel = []
    for ch in sorted(set(channels) | set(channel_spend)):
        acc = _totals(channels.get(ch, []))
        spend = channel_spend.get(ch, Decimal(0))
        by_channel.append(
            {
                "channel": ch,
                "spend": _money(spend),
                **_measures(acc),
                "cost_per_lead": _cost_per(spend, acc["leads"]),
                "cost_per_funded": _cost_per(spend, acc["funded"]),
                "return_on_spend": _roi(spend, acc["volume"], margin),
            }
        )
    acc = _totals(cube)
    spend = sum((Decimal(str(e["spend_in_scope"])) for e in entries), Decimal(0))
    return {
        "schema": COSTS_SCHEMA,
        "scope": scope.as_dict(),
        "currency": currency,
        "margin": float(margin),
        "total": {
            "spend": _money(spend),
            **_measures(acc),
            "cost_per_lead": _cost_per(spend, acc["leads"]),
            "cost_per_application": _cost_per(spend, acc["applied"]),
            "cost_per_funded": _cost_per(spend, acc["funded"]),
            "return_on_spend": _roi(spend, acc["volume"], margin),
        },
        "by_cost": table,
        "by_channel": by_channel,
        "entries": entries,
    }


# ---- experiments -------------------------------------------------------------------------------

EXPERIMENTS_SCHEMA = "huoke.report.experiments/1"


def experiments_report(engine: Engine, scope: Scope = ALL_LEADS) -> dict[str, Any]:
    """For every split (and holdout) of every published journey: per arm, the leads assigned and
    how many reached each of the journey's goals within its window, and how many clicked a
    tracked link of the journey (``clicked``: click-through); each arm against the control (the
    holdout arm, else the first arm): absolute and relative lift with 95% intervals, and a
    verdict in plain words."""
    engine.journeys.refresh_live()
    since = scope.since.isoformat() if scope.since else None
    until = (scope.until + timedelta(days=1)).isoformat() if scope.until else None
    out = []
    for jid, live in sorted(engine.journeys.live.items()):
        if scope.journey and jid != scope.journey:
            continue
        journey = live.journey
        splits = [s for s in journey.steps.values() if isinstance(s, SplitStep)]
        if not splits:
            continue
        goals = {g.stage.value: (g.within.total_seconds() if g.within else None) for g in journey.goals}
        goals = {k: v for k, v in goals.items() if k in MILESTONES} or {"applied": None, "funded": None}
        goals["clicked"] = None  # click-through: a person clicked a tracked link of the journey
        counts: dict[tuple[str, str], dict[str, Any]] = {
            (r["step"], r["arm"]): r for r in engine.funnel.arms(jid, goals, since, until)
        }
        for split in splits:
            arms = list(split.arms)
            control = next((a for a in arms if a.holdout), arms[0])
            arm_rows: list[dict[str, Any]] = []
            for arm in arms:
                row = counts.get((split.id, arm.label), {})
                arm_rows.append(
                    {
                        "arm": arm.label,
                        "holdout": arm.holdout,
                        "percent": arm.percent,
                        "leads": int(row.get("leads") or 0),
                        "converted": {g: int(row.get(g) or 0) for g in goals},
                    }
                )
            base = next(r for r in arm_rows if r["arm"] == control.label)
            comparisons = []
            for r in arm_rows:
                if r["arm"] == control.label:
                    continue
                for g in goals:
                    lift = Lift(base["leads"], base["converted"][g], r["leads"], r["converted"][g])
                    comparisons.append({"goal": g, **lift.as_dict(r["arm"], control.label)})
            out.append(
                {
                    "journey_id": jid,
                    "step": split.id,
                    "control": control.label,
                    "goals": {g: (None if w is None else w / 3600) for g, w in goals.items() if g != "clicked"},
                    "arms": arm_rows,
                    "comparisons": comparisons,
                    "uplift_targeting": _uplift_targeting(engine, jid, split, goals, until)
                    if control.holdout
                    else None,
                }
            )
    return {"schema": EXPERIMENTS_SCHEMA, "scope": scope.as_dict(), "splits": out}


def _uplift_targeting(
    engine: Engine, journey_id: str, split: SplitStep, goals: dict[str, float | None], until: str | None
) -> dict[str, Any] | None:
    """What targeting by the journey's uplift model achieves, measured in the holdout that came
    after it was trained (a new experiment it never learnt from): the lift of messaging among the
    leads it calls persuadable, against the lift among every lead — what messaging at random
    achieves. None while the journey has no uplift model."""
    entry = engine.leads.registry(UPLIFT).in_use().get(uplift_kind(journey_id))
    if entry is None:
        return None
    since = entry["at"].isoformat()
    goal = "applied" if "applied" in goals else next(g for g in goals if g != "clicked")
    held = {a.label for a in split.arms if a.holdout}
    by_band: dict[str, list[int]] = {}  # band -> [messaged, converted, held out, converted]
    for r in engine.funnel.arms(journey_id, {goal: goals[goal]}, since, until, band_of=uplift_kind(journey_id)):
        if r["step"] != split.id:
            continue
        counts = by_band.setdefault(r["band"], [0, 0, 0, 0])
        at = 2 if r["arm"] in held else 0
        counts[at] += int(r["leads"] or 0)
        counts[at + 1] += int(r[goal] or 0)

    def lift(rows: list[list[int]], label: str) -> dict[str, Any]:
        m, mc, h, hc = (sum(c[i] for c in rows) for i in range(4))
        return Lift(h, hc, m, mc).as_dict(label, "held out")

    return {
        "model_version": entry["version"],
        "since": since,
        "goal": goal,
        "targeted": lift([c for b, c in by_band.items() if b == PERSUADABLE], "persuadable, messaged"),
        "random": lift(list(by_band.values()), "everyone, messaged"),
        "by_band": {b: lift([c], f"{b}, messaged") for b, c in sorted(by_band.items())},
    }


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


# ---- score bands -------------------------------------------------------------------------------

SCORES_SCHEMA = "huoke.report.scores/1"


def scores_report(engine: Engine, scope: Scope = ALL_LEADS) -> dict[str, Any]:
    """Leads per score kind and band (each lead's latest score), with how many applied and were
    funded: whether the bands sort leads as they should."""
    since, until = scope.days
    kinds: dict[str, list[dict[str, Any]]] = defaultdict(list)
    checks = _calibration_by_band(engine)
    for r in engine.funnel.score_bands(since, until, scope.channel):
        leads = int(r["leads"])
        kinds[r["kind"]].append(
            {
                "band": r["band"],
                "leads": leads,
                "applied": int(r["applied"]),
                "funded": int(r["funded"]),
                "application_rate": _rate(int(r["applied"]), leads),
                "funded_rate": _rate(int(r["funded"]), leads),
                "calibration": checks.get((r["kind"], r["band"])),
            }
        )
    return {
        "schema": SCORES_SCHEMA,
        "scope": scope.as_dict(),
        "kinds": dict(sorted(kinds.items())),
        # The scheduled monitoring's measurements, newest first: drift and calibration over time.
        "monitoring": monitoring_history(engine)[::-1][:MONITORING_SHOWN],
    }


#: The scheduled model measurements the scores report shows (the newest).
MONITORING_SHOWN = 24


def _calibration_by_band(engine: Engine) -> dict[tuple[str, str], str]:
    """How the model in use did on its later window, band by band: predicted against observed,
    and "off" where they differ by more than 20% among enough leads (model list flags it too)."""
    out = {}
    for kind in MODEL_KINDS:
        versions = engine.leads.registry(kind).versions
        if not versions:
            continue
        for band in versions[-1]["metrics"].get("calibration", []):
            few = int(band["rows"]) < CALIBRATION_MIN_ROWS
            verdict = "too few to say" if few else "off" if calibration_warnings([band]) else "ok"
            out[(kind, band["band"])] = (
                f"predicts {band['predicted']:.1%}, observed {band['observed']:.1%} ({band['rows']:,}): {verdict}"
            )
    return out


# ---- journey flows -----------------------------------------------------------------------------

FLOWS_SCHEMA = "huoke.report.flows/1"


def flows_report(engine: Engine, scope: Scope = ALL_LEADS) -> dict[str, Any]:
    """Each published journey's steps in order: leads that reached each (every version), leads
    there now, and what became of the messages it sent (all time: steps are not dated)."""
    engine.journeys.refresh_live()
    reached: dict[tuple[str, str], int] = defaultdict(int)
    entered: dict[str, int] = defaultdict(int)
    for r in engine.index.outcomes(scope.journey):
        if r["kind"] == "reached":
            reached[(r["journey_id"], r["label"])] += int(r["n"])
        elif r["kind"] == "entered":
            entered[r["journey_id"]] += int(r["n"])
    messages: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for m in engine.funnel.messages():
        messages[(m["journey_id"], m["step"])][m["outcome"]] += int(m["n"])
    journeys = []
    for jid, live in sorted(engine.journeys.live.items()):
        if scope.journey and jid != scope.journey:
            continue
        now = engine.index.step_counts(jid)
        steps = [
            {
                "step": step_id,
                "kind": type(step).KIND,
                "reached": reached[(jid, step_id)],
                "active": now.get(step_id, 0),
                **{k: messages[(jid, step_id)].get(k, 0) for k in ("sent", "skipped", "failed", "clicked")},
            }
            for step_id, step in live.journey.steps.items()
        ]
        journeys.append({"journey_id": jid, "version": live.version, "entered": entered[jid], "steps": steps})
    return {"schema": FLOWS_SCHEMA, "scope": scope.as_dict(), "journeys": journeys}


# ---- officers' tasks ---------------------------------------------------------------------------

TASKS_SCHEMA = "huoke.report.tasks/1"


def _hours(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p90": None}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return {"median": round(statistics.median(ordered), 2), "p90": round(p90, 2)}


def tasks_report(engine: Engine, timezone: str, scope: Scope = ALL_LEADS) -> dict[str, Any]:
    """Per queue: tasks created there (in scope's dates) and how many of those were escalated on;
    tasks that arrived by escalation; open now and overdue (past the queue's service level), done
    and their outcomes, by the queue they sit in or ended in; hours from task to first contact
    (the task done), median and 90th percentile."""
    now = engine.clock.now()
    tz = ZoneInfo(timezone)
    slas = engine.desk.slas
    queues: dict[str, dict[str, Any]] = {}
    waits: dict[str, list[float]] = defaultdict(list)
    for t in engine.index.task_facts():
        created = datetime.fromisoformat(t["created_at"])
        day = created.astimezone(tz).date()
        if (scope.since and day < scope.since) or (scope.until and day > scope.until):
            continue

        def queue(name: str) -> dict[str, Any]:
            return queues.setdefault(
                name,
                {"queue": name, "created": 0, "escalated": 0, "escalated_in": 0, "open": 0, "overdue": 0, "done": 0,
                 "outcomes": {}},
            )  # fmt: skip

        origin, q = queue(t["created_queue"]), queue(t["queue"])
        origin["created"] += 1  # where it was created
        if t["queue"] != t["created_queue"]:
            origin["escalated"] += 1  # moved on from there
            q["escalated_in"] += 1  # and arrived here
        if t["outcome"]:  # done, open and overdue: where it ended, or sits now
            q["done"] += 1
            q["outcomes"][t["outcome"]] = q["outcomes"].get(t["outcome"], 0) + 1
            done_at = datetime.fromisoformat(t["updated_at"])
            waits[t["queue"]].append((done_at - created).total_seconds() / 3600)
        else:
            q["open"] += 1
            sla = slas.get(t["queue"])
            if sla is not None and datetime.fromisoformat(t["queue_since"]) + sla <= now:
                q["overdue"] += 1
    rows = []
    for name, q in sorted(queues.items()):
        sla = slas.get(name)
        rows.append(
            {
                **q,
                "outcomes": dict(sorted(q["outcomes"].items())),
                "sla_hours": None if sla is None else sla.total_seconds() / 3600,
                "hours_to_first_contact": _hours(waits[name]),
            }
        )
    return {"schema": TASKS_SCHEMA, "scope": scope.as_dict(), "as_of": now.isoformat(), "queues": rows}
