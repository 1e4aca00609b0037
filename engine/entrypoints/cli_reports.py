"""``huoke report …`` and ``huoke costs …``: what a marketing team reads, as tables that fit 80
columns (long names wrap, never cut; abbreviations have a legend) or as JSON (``--json``).

Every report reads the views as the last ``run``/worker pass left them; ``--as-of`` rebuilds
them from the event log as it stood at that moment (scratch files; the store is not touched).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.text import Text

from engine.application.analytics import ALL_LEADS, Scope
from engine.domain.marketing.costs import DIMENSIONS
from engine.domain.shared.errors import CostImportError
from engine.entrypoints.cli_common import (
    JsonOpt,
    app,
    clock_for,
    console,
    current_user,
    emit_json,
    engine_for,
    err,
    fail,
    import_summary,
    log_progress,
    report_app,
    report_table,
    settings,
)
from engine.entrypoints.importing import import_costs
from engine.entrypoints.report_docs import (
    REPORT_VIEWS,
    FilterError,
    ReportName,
    check_day,
    check_journey,
    lift_span,
    marketing_costs,
    report_document,
    scope_from,
)

costs_app = typer.Typer(
    help="Marketing costs: what campaigns, partners, channels and events cost.", no_args_is_help=True
)
app.add_typer(costs_app, name="costs")

AsOf = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="the report as it stood then, rebuilt from the event log: 2026-03-31 (the end of that day) "
        "or 2026-03-31T18:00 (the lender's time zone unless an offset is given)",
    ),
]
Since = Annotated[str | None, typer.Option("--since", help="leads captured on or after this day (2026-03-01)")]
Until = Annotated[str | None, typer.Option("--until", help="leads captured on or before this day (2026-03-31)")]
Channel = Annotated[
    str | None, typer.Option("--channel", help="only leads attributed to this source channel (by --touch)")
]
JourneyOpt = Annotated[str | None, typer.Option("--journey", help="only this journey")]
Touch = Annotated[str, typer.Option("--touch", help="attribute each lead to its first or its last touch")]


# ---- shared ------------------------------------------------------------------------------------


def parse_moment(text: str, timezone: str, option: str = "--as-of") -> datetime:
    """A day (its end) or a date and time; without an offset, in the lender's time zone. A
    moment outside the days huoke knows (1970 to 2199) is refused (exit 2)."""
    tz = ZoneInfo(timezone)
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            check_day(day, option)
            return datetime.combine(day + timedelta(days=1), time(), tz) - timedelta(microseconds=1)
        moment = datetime.fromisoformat(text.strip())
    except FilterError as e:
        fail(str(e), 2)
    except ValueError:
        fail(f"{option}: expected a day like 2026-03-31 or a time like 2026-03-31T18:00, got {text!r}", 2)
    try:
        check_day(moment, option)
    except FilterError as e:
        fail(str(e), 2)
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def scope_of(since: str | None, until: str | None, channel: str | None, journey: str | None, touch: str) -> Scope:
    filters = {"since": since, "until": until, "channel": channel, "journey": journey, "touch": touch}
    try:
        return scope_from(filters, prefix="--")
    except FilterError as e:
        fail(str(e), 2)


def run_report(
    name: ReportName, as_of: str | None, scope: Scope = ALL_LEADS, margin: Decimal | None = None, journeys: bool = True
) -> dict[str, Any]:
    """The ``name`` report document: from the views now, or as it stood at ``as_of``."""
    s = settings()
    moment = parse_moment(as_of, s.timezone) if as_of else None
    # Reports read the published journeys from the store; only the task report needs the
    # configuration files (the desk's service levels), so the others skip reading the folder.
    engine = engine_for(s, journeys=journeys and name == "tasks")
    try:
        try:
            check_journey(engine, scope, prefix="--")
        except FilterError as e:
            fail(str(e), 2)
        if moment is None:
            return report_document(name, engine, s, scope, moment, margin)
        views = ", ".join(REPORT_VIEWS[name])
        with log_progress(f"{views} as of {moment:%Y-%m-%d %H:%M}, from the event log") as progress:
            return report_document(name, engine, s, scope, moment, margin, progress)
    finally:
        engine.close()


def short(value: float | int | None) -> str:
    """A number in at most 6 characters: 950, 12.3k, 4.5M, 1.2B."""
    if value is None:
        return "—"
    v = float(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= limit:
            return f"{v / limit:.1f}{suffix}"
    return f"{v:.0f}" if v == int(v) else f"{v:.2f}"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def scope_caption(scope: dict[str, Any]) -> str:
    parts = []
    if scope.get("since") or scope.get("until"):
        parts.append(f"captured {scope.get('since') or 'from the start'} to {scope.get('until') or 'today'}")
    if scope.get("channel"):
        parts.append(f"channel {scope['channel']}")
    if scope.get("journey"):
        parts.append(f"journey {scope['journey']}")
    return "; ".join(parts) or "all leads"


# ---- the funnel, journeys and referrals -------------------------------------------------------


def print_funnel(doc: dict[str, Any]) -> None:
    audiences = list(doc["funnel"][0]["by_audience"]) if doc["funnel"] else []
    abbreviations = {"young_professional": "young", "small_business": "SME"}
    shown = [abbreviations.get(a, a.replace("_", " ")) for a in audiences]
    legend = ", ".join(f"{abbreviations[a]} = {a}" for a in audiences if a in abbreviations)
    table = report_table(
        f"Conversion funnel — {doc['leads']} leads",
        ["stage", *shown, "total", "of leads"],
        caption="; ".join(["a stage counts the leads that reached it or a later one", *([legend] if legend else [])]),
    )
    for row in doc["funnel"]:
        table.add_row(
            row["stage"], *[str(row["by_audience"][a]) for a in audiences], str(row["total"]), f"{row['rate']:.1%}"
        )
    console.print(table)
    stages = ["new", "contacted", "engaged", "applied", "approved", "funded", "lost"]
    heads = ["new", "cont.", "eng.", "appl.", "appr.", "fund.", "lost"]  # narrow: channel names stay whole
    src = report_table(
        "Leads now at each stage, by source channel",
        ["source channel", *heads, "total"],
        caption="cont. = contacted, eng. = engaged, appl. = applied, appr. = approved, fund. = funded",
    )
    for row in doc["by_source_channel"]:
        src.add_row(row["source_channel"], *[str(row["stages"].get(st, 0)) for st in stages], str(row["total"]))
    console.print(src)
    msg = report_table(
        "Messages per journey step",
        ["journey", "step", "channel", "sent", "skipped", "failed", "retrying", "held"],
        wrap=3,
        caption="retrying and held: waiting now (channel trouble; a contact window, a cap or an earlier message)",
    )
    for row in doc["messages"]:
        msg.add_row(
            row["journey_id"],
            row["step"],
            row["channel"],
            *(str(row[k]) for k in ("sent", "skipped", "failed", "retrying", "held")),
        )
    console.print(msg)


@report_app.command("funnel")
def report_funnel(as_of: AsOf = None, as_json: JsonOpt = False) -> None:
    """Leads by stage × audience × source channel, and messages sent per journey step."""
    doc = run_report("funnel", as_of)
    if as_json:
        emit_json(doc)
    else:
        print_funnel(doc)


@report_app.command("referrals")
def report_referrals(as_of: AsOf = None, as_json: JsonOpt = False) -> None:
    """Referrals by programme and month: made, applied, funded and volume, rewards paid, held,
    capped, clawed back, cost per funded referral."""
    doc = run_report("referrals", as_of, journeys=False)
    if as_json:
        emit_json(doc)
        return
    rows = doc["by_programme_month"]
    capped, back = sum(r["capped"] for r in rows), sum(r["clawed_back"] for r in rows)
    table = report_table(
        f"Referrals by programme and month ({doc['refused_attempts']} refused attempts)",
        ["programme", "month", "made", "applied", "funded", "volume", "paid", "held", "cost/funded"],
        caption=f"made: referrals recorded; volume: funded; cost/funded: both sides' rewards paid per funded "
        f"referral; {capped} capped and {back} clawed back in all (--json for each row)",
        wrap=2,
    )
    for r in rows:
        table.add_row(r["programme"] if r["programme"] != "(not yet qualified)" else "—", r["month"],
                      str(r["referrals"]), str(r["applied"]), str(r["funded"]), short(r["funded_volume"]),
                      str(r["paid"]), str(r["held"]), short(r["cost_per_funded"]))  # fmt: skip
    console.print(table)


@report_app.command("journeys")
def report_journeys(as_of: AsOf = None, as_json: JsonOpt = False) -> None:
    """Per journey version: entered, refused, goals within the window, exits, split arms, tasks."""
    doc = run_report("journeys", as_of)
    if as_json:
        emit_json(doc)
        return
    for row in doc["journeys"]:
        rate = row["conversion_rate"]
        converted = "no goal set" if rate is None else f"{rate:.1%} converted within the goal window"
        table = report_table(f"{row['journey_id']} v{row['version']}: {row['entered']:,} entered, {converted}",
                             ["outcome", "leads"])  # fmt: skip
        shown = {"message": "message requested", "message skipped": "step skipped"}
        for kind in ("goal", "exit", "split", "task", "message", "message skipped", "refused"):
            for label, n in row[kind].items():
                table.add_row(f"{shown.get(kind, kind)}: {label}", str(n))
        for label, n in row["deliveries"].items():  # the same counts as report funnel and the outboxes
            table.add_row(f"delivery: {label}", str(n))
        console.print(table)


# ---- attribution, costs, experiments, trends ---------------------------------------------------


@report_app.command("attribution")
def report_attribution(
    since: Since = None,
    until: Until = None,
    channel: Channel = None,
    touch: Touch = "first",
    dimension: Annotated[
        list[str] | None, typer.Option("--dimension", help=f"only these: {', '.join(DIMENSIONS)}")
    ] = None,
    as_of: AsOf = None,
    as_json: JsonOpt = False,
) -> None:
    """The funnel (captured → contacted → applied → approved → funded, and volume) by source
    channel, partner, campaign, UTM source/medium/campaign and offline event; first or last touch."""
    scope = scope_of(since, until, channel, None, touch)
    unknown = sorted(set(dimension or []) - set(DIMENSIONS))
    if unknown:
        fail(f"--dimension: {', '.join(unknown)} unknown; use {', '.join(DIMENSIONS)}")
    doc = run_report("attribution", as_of, scope)
    if as_json:
        emit_json(doc)
        return
    total = doc["total"]
    console.print(
        Text.assemble(
            (f"{total['leads']:,} leads", "bold"),
            f" ({scope_caption(doc['scope'])}; {touch} touch): "
            f"{total['applied']:,} applied, {total['funded']:,} funded, volume {short(total['funded_volume'])}; "
            f"{total['multi_touch']:,} came through more than one source",
        )
    )
    for d in dimension or DIMENSIONS:
        rows = doc["dimensions"][d]
        if not rows or (len(rows) == 1 and rows[0]["value"] == "(none)"):
            continue
        table = report_table(
            f"By {d.replace('_', ' ')}",
            [d.replace("_", " "), "leads", "contact", "applied", "approv", "funded", "fund%", "volume"],
            caption="contact = contacted, approv = approved, fund% = funded of leads",
        )
        for r in rows:
            table.add_row(r["value"], f"{r['leads']:,}", f"{r['contacted']:,}", f"{r['applied']:,}",
                          f"{r['approved']:,}", f"{r['funded']:,}", pct(r["funded_rate"]),
                          short(r["funded_volume"]))  # fmt: skip
        console.print(table)


@report_app.command("costs")
def report_costs(
    since: Since = None,
    until: Until = None,
    channel: Channel = None,
    touch: Touch = "first",
    margin: Annotated[
        float | None, typer.Option("--margin", help="share of funded volume counted as return (HUOKE_FUNDED_MARGIN)")
    ] = None,
    as_of: AsOf = None,
    as_json: JsonOpt = False,
) -> None:
    """Spend against results: cost per lead, per application and per funded loan, and return on
    spend (funded volume × margin − spend, over spend), per cost and per channel."""
    scope = scope_of(since, until, channel, None, touch)
    if margin is not None and not 0 <= margin <= 1:
        fail(f"--margin: expected a share between 0 and 1 (0.03 = 3%), got {margin}")
    doc = run_report("costs", as_of, scope, Decimal(str(margin)) if margin is not None else None)
    if as_json:
        emit_json(doc)
        return
    t = doc["total"]
    console.print(
        Text.assemble(
            (f"{doc['currency']} {t['spend']:,.2f} spent", "bold"),
            f" ({scope_caption(doc['scope'])}): "
            f"{t['leads']:,} leads, {t['funded']:,} funded, volume {short(t['funded_volume'])}; per lead "
            f"{short(t['cost_per_lead'])}, per funded loan {short(t['cost_per_funded'])}; return on spend "
            f"{pct(t['return_on_spend'])} at a {doc['margin']:.1%} margin",
        )
    )
    legend = "per lead/app/funded: spend per lead, application, funded loan; ROS: return on spend"
    table = report_table("By cost", ["cost", "spend", "leads", "funded", "per lead", "per app", "per fund", "ROS"],
                         caption=legend)  # fmt: skip
    for r in doc["by_cost"]:
        table.add_row(f"{r['kind']}: {r['name']}", short(r["spend"]), f"{r['leads']:,}", f"{r['funded']:,}",
                      short(r["cost_per_lead"]), short(r["cost_per_application"]), short(r["cost_per_funded"]),
                      pct(r["return_on_spend"]))  # fmt: skip
    console.print(table)
    table = report_table("By channel (each cost shared over its leads' channels)",
                         ["channel", "spend", "leads", "funded", "volume", "per lead", "per fund", "ROS"],
                         caption="spend: every cost's share for the channel's leads (referral: its rewards and "
                                 "the campaigns its leads came through); the referral programme's cost per "
                                 "funded referral is its rewards' (By cost, report referrals)")  # fmt: skip
    for r in doc["by_channel"]:
        table.add_row(r["channel"], short(r["spend"]), f"{r['leads']:,}", f"{r['funded']:,}",
                      short(r["funded_volume"]), short(r["cost_per_lead"]), short(r["cost_per_funded"]),
                      pct(r["return_on_spend"]))  # fmt: skip
    console.print(table)


@report_app.command("experiments")
def report_experiments(
    journey: JourneyOpt = None, since: Since = None, until: Until = None, as_of: AsOf = None, as_json: JsonOpt = False
) -> None:
    """Every split and holdout: conversion per arm to each goal and click-through (goal
    'clicked'), lift over the control with 95% confidence intervals, and a verdict in plain words."""
    scope = scope_of(since, until, None, journey, "first")
    doc = run_report("experiments", as_of, scope)
    if as_json:
        emit_json(doc)
        return
    if not doc["splits"]:
        console.print("No published journey has a split step.")
    for split in doc["splits"]:
        arms = ", ".join(f"{a['arm']} {a['leads']:,}" for a in split["arms"])
        table = report_table(
            f"{split['journey_id']} / {split['step']} — against arm {split['control']} (leads: {arms})",
            ["arm → goal", "rate / control", "lift", "95% once", "95% any look", "act now"],
            caption="lift in percentage points; 95% once: read once at a size set beforehand; 95% any look: "
            "right however often you look, and act now says so: stop (the arm wins or loses) or keep going",
            wrap=1,
        )
        verdicts = []
        for c in split["comparisons"]:
            act = c["always_valid"]["verdict"].replace(f"stop: {c['arm']} ", "stop: ")
            table.add_row(f"{c['arm']} → {c['goal']}", f"{pct(c['arm_rate'])} / {pct(c['control_rate'])}",
                          "—" if c["absolute_lift"] is None else f"{c['absolute_lift'] * 100:+.1f}",
                          lift_span(c["absolute_ci95"], "…"), lift_span(c["always_valid"]["ci95"], "…"),
                          act)  # fmt: skip
            verdicts.append(f"  {c['arm']} → {c['goal']}: {c['verdict']}")
        console.print(table)
        console.print("\n".join(verdicts), highlight=False, soft_wrap=True)
        if split.get("uplift_targeting"):
            console.print(_uplift_targeting_text(split["uplift_targeting"]), highlight=False, soft_wrap=True)


def _uplift_targeting_text(u: dict[str, Any]) -> str:
    """Targeting by the uplift model against messaging at random, in the holdout since it was trained."""

    def said(c: dict[str, Any]) -> str:
        lift = "—" if c["absolute_lift"] is None else f"{c['absolute_lift'] * 100:+.1f} points"
        return f"{lift} (95% any look {lift_span(c['always_valid']['ci95'], '…')}; {c['arm_leads']:,} messaged, " \
               f"{c['control_leads']:,} held out)"  # fmt: skip

    head = f"  uplift targeting (model v{u['model_version']}, leads assigned since {u['since'][:10]})"
    everyone = u["random"]
    if not everyone["arm_leads"] and not everyone["control_leads"]:
        return f"{head}: no lead assigned since the model was trained yet; its lift is measured on those"
    return f"{head}, lift in {u['goal']}: persuadables {said(u['targeted'])}; everyone (at random) {said(everyone)}"


@report_app.command("engagement")
def report_engagement(journey: JourneyOpt = None, as_of: AsOf = None, as_json: JsonOpt = False) -> None:
    """Per journey step: messages sent, unique clicks by people and click-through rate, scanner
    clicks (never engagement), opens (unreliable) and clickers who applied after."""
    doc = run_report("engagement", as_of, scope_of(None, None, None, journey, "first"))
    if as_json:
        emit_json(doc)
        return
    total = "—" if doc["click_through_rate"] is None else pct(doc["click_through_rate"])
    table = report_table(
        f"Clicks on tracked links: {doc['clicked']:,} of {doc['sent']:,} messages clicked ({total}); "
        f"{doc['scanner_clicked']:,} scanner clicks not counted",
        ["journey", "step", "sent", "clicked", "CTR", "scan", "applied"],
        caption="clicked: unique clicks by people; CTR: clicked ÷ sent; scan: scanner clicks (not counted); "
        "applied: clickers who applied after (templates: --json)",
    )
    for r in (r for r in doc["steps"] if r["sent"]):
        ctr = "—" if r["click_through_rate"] is None else pct(r["click_through_rate"])
        table.add_row(r["journey_id"], r["step"], f"{r['sent']:,}", f"{r['clicked']:,}", ctr,
                      f"{r['scanner_clicked']:,}", f"{r['applied_after_click']:,}")  # fmt: skip
    console.print(table)


@report_app.command("daily")
def report_daily(
    since: Since = None,
    until: Until = None,
    channel: Channel = None,
    journey: JourneyOpt = None,
    as_of: AsOf = None,
    as_json: JsonOpt = False,
) -> None:
    """Each day: leads captured, contacted, applied, approved, funded and volume, messages sent
    (days are the lender's; --since/--until pick days of activity)."""
    scope = scope_of(since, until, channel, journey, "first")
    doc = run_report("daily", as_of, scope)
    if as_json:
        emit_json(doc)
        return
    table = report_table(
        f"Each day ({scope_caption(doc['scope'])})",
        ["day", "captured", "contact", "applied", "approv", "funded", "volume", "sent", "failed"],
        caption="contact/applied/approv/funded: leads first reaching that stage that day; sent, failed: messages",
        wrap=0,
    )
    for d in [*doc["days"], {"day": "total", **doc["totals"]}]:
        table.add_row(d["day"], f"{d['captured']:,}", f"{d['contacted']:,}", f"{d['applied']:,}",
                      f"{d['approved']:,}", f"{d['funded']:,}", short(d["funded volume"]), f"{d['sent']:,}",
                      f"{d['failed']:,}")  # fmt: skip
    console.print(table)


@report_app.command("tasks")
def report_tasks(since: Since = None, until: Until = None, as_of: AsOf = None, as_json: JsonOpt = False) -> None:
    """Loan officers' tasks per queue: created, open, overdue (past the service level), done and
    outcomes, escalated, hours to first contact (median, 90th percentile)."""
    scope = scope_of(since, until, None, None, "first")
    doc = run_report("tasks", as_of, scope)
    if as_json:
        emit_json(doc)
        return
    table = report_table(
        "Officers' task queues",
        ["queue", "created", "escal out", "escal in", "open", "overdue", "done", "median h", "p90 h"],
        caption="created: in this queue; escal out: of those, escalated on; escal in: arrived by escalation; "
        "open, overdue (past the queue's service level now) and done: where tasks sit or ended; median/p90 h: "
        "hours from task to first contact (task done)",
    )
    for q in doc["queues"]:
        h = q["hours_to_first_contact"]
        table.add_row(q["queue"], str(q["created"]), str(q["escalated"]), str(q["escalated_in"]), str(q["open"]),
                      str(q["overdue"]), str(q["done"]), short(h["median"]), short(h["p90"]))  # fmt: skip
    console.print(table)
    for q in doc["queues"]:
        if q["outcomes"]:
            console.print(f"{q['queue']}: " + ", ".join(f"{k} {v}" for k, v in q["outcomes"].items()))


@report_app.command("scores")
def report_scores(
    since: Since = None, until: Until = None, channel: Channel = None, as_of: AsOf = None, as_json: JsonOpt = False
) -> None:
    """Leads per score band (each lead's latest score of each kind), and how many applied and were funded."""
    scope = scope_of(since, until, channel, None, "first")
    doc = run_report("scores", as_of, scope)
    if as_json:
        emit_json(doc)
        return
    if not doc["kinds"]:
        console.print("No lead has been scored yet.")
    for kind, bands in doc["kinds"].items():
        table = report_table(
            f"Score bands: {kind}",
            ["band", "leads", "applied", "funded", "applied%", "funded%", "model on its later window"],
            caption="the model in use: its average predicted probability against what its held-out later "
            "leads did (off: more than 20% apart among 50 or more)",
            text_last=True,
        )
        for b in bands:
            table.add_row(b["band"], f"{b['leads']:,}", f"{b['applied']:,}", f"{b['funded']:,}",
                          pct(b["application_rate"]), pct(b["funded_rate"]), b["calibration"] or "—")  # fmt: skip
        console.print(table)


@report_app.command("flows")
def report_flows(journey: JourneyOpt = None, as_of: AsOf = None, as_json: JsonOpt = False) -> None:
    """Each journey's steps in order: leads that reached each, leads there now, messages sent."""
    scope = scope_of(None, None, None, journey, "first")
    doc = run_report("flows", as_of, scope)
    if as_json:
        emit_json(doc)
        return
    for j in doc["journeys"]:
        table = report_table(
            f"{j['journey_id']} v{j['version']}: {j['entered']:,} entered",
            ["step", "kind", "reached", "now", "sent", "skipped", "failed"],
            wrap=2,
        )
        for st in j["steps"]:
            table.add_row(st["step"], st["kind"], f"{st['reached']:,}", f"{st['active']:,}", f"{st['sent']:,}",
                          f"{st['skipped']:,}", f"{st['failed']:,}")  # fmt: skip
        console.print(table)


# ---- costs ------------------------------------------------------------------------------------


@costs_app.command("import")
def costs_import(file: Path, as_json: JsonOpt = False) -> None:
    """Record a CSV (or JSONL) of costs: kind (channel, partner, campaign, utm_source, utm_medium,
    utm_campaign or event), name, period (2026-03, 2026-03-05 or 2026-03-01..2026-03-31), amount,
    currency, note. Valid rows are kept; importing again changes nothing; a new amount revises."""
    s = settings()
    if not file.exists():
        fail(f"{file}: no such file")
    try:
        report = import_costs(s, file, current_user(), clock_for(s))
    except CostImportError as problem:
        fail(str(problem))
    if as_json:
        emit_json(report.as_dict())
    else:
        refused = len({p.line for p in report.errors})
        console.print(
            import_summary(file, report.rows, report.created, f"{report.revised} revised", report.unchanged, refused)
        )
        for p in report.errors:
            err.print(f"{file}:{p.line}: {p.field}: {p.problem}", soft_wrap=True, highlight=False)
    if report.errors:
        raise typer.Exit(1)


@costs_app.command("list")
def costs_list(as_json: JsonOpt = False) -> None:
    """Every cost recorded (as last revised) and the referral rewards paid (from the ledger)."""
    from engine.application.analytics import referral_costs

    s = settings()
    costs = marketing_costs(s)
    engine = engine_for(s, journeys=False)
    try:
        referral = referral_costs(engine)
    finally:
        engine.close()
    rows = [c.as_dict() for c in [*costs, *referral]]
    if as_json:
        emit_json({"schema": "huoke.costs/1", "currency": s.currency, "costs": rows})
        return
    table = report_table(f"Marketing costs ({s.currency})", ["kind: name", "period", "amount", "note"], wrap=2,
                         text_last=True)  # fmt: skip
    for cost, r in zip([*costs, *referral], rows, strict=True):
        table.add_row(f"{r['kind']}: {r['name']}", cost.period.label, f"{r['amount']:,.2f}", r["note"] or r["source"])
    console.print(table)
