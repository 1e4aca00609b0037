"""Attribution, and cost and return on spend: what marketing bought and what it brought."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from engine.application.analytics.common import ALL_LEADS, Scope, _measures, _money, _totals
from engine.application.engine import Engine
from engine.application.marketing import Cost
from engine.domain.marketing.costs import DIMENSIONS, parse_period
from engine.domain.shared.money import Money

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
