"""How each report document looks in a terminal: its tables (80 columns; long names wrap, never
cut; abbreviations have a legend) and lines of text, in the order the CLI prints them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import RenderableType
from rich.text import Text

from engine.presentation.tables import lift_span, pct, report_table, scope_caption, short

#: What a renderer returns: tables and text, printed one after the other.
Shown = RenderableType


def funnel(doc: dict[str, Any]) -> list[Shown]:
    """Leads by stage and audience, by source channel, and messages per journey step."""
    out: list[Shown] = []
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
    out.append(table)
    stages = ["new", "contacted", "engaged", "applied", "approved", "funded", "lost"]
    heads = ["new", "cont.", "eng.", "appl.", "appr.", "fund.", "lost"]  # narrow: channel names stay whole
    src = report_table(
        "Leads now at each stage, by source channel",
        ["source channel", *heads, "total"],
        caption="cont. = contacted, eng. = engaged, appl. = applied, appr. = approved, fund. = funded",
    )
    for row in doc["by_source_channel"]:
        src.add_row(row["source_channel"], *[str(row["stages"].get(st, 0)) for st in stages], str(row["total"]))
    out.append(src)
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
    out.append(msg)
    return out


def referrals(doc: dict[str, Any]) -> list[Shown]:
    """Referrals by programme and month, with the cost per funded referral."""
    out: list[Shown] = []
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
    out.append(table)
    return out


def journeys(doc: dict[str, Any]) -> list[Shown]:
    """Per journey version: its outcomes and deliveries."""
    out: list[Shown] = []
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
        out.append(table)
    return out


def attribution(doc: dict[str, Any], touch: str, dimensions: Sequence[str]) -> list[Shown]:
    """The headline, then one table per attribution dimension."""
    out: list[Shown] = []
    total = doc["total"]
    out.append(
        Text.assemble(
            (f"{total['leads']:,} leads", "bold"),
            f" ({scope_caption(doc['scope'])}; {touch} touch): "
            f"{total['applied']:,} applied, {total['funded']:,} funded, volume {short(total['funded_volume'])}; "
            f"{total['multi_touch']:,} came through more than one source",
        )
    )
    for d in dimensions:
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
        out.append(table)
    return out


def costs(doc: dict[str, Any]) -> list[Shown]:
    """The headline, spend by cost and by channel."""
    out: list[Shown] = []
    t = doc["total"]
    out.append(
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
    out.append(table)
    table = report_table("By channel (each cost shared over its leads' channels)",
                         ["channel", "spend", "leads", "funded", "volume", "per lead", "per fund", "ROS"],
                         caption="spend: every cost's share for the channel's leads (referral: its rewards and "
                                 "the campaigns its leads came through); the referral programme's cost per "
                                 "funded referral is its rewards' (By cost, report referrals)")  # fmt: skip
    for r in doc["by_channel"]:
        table.add_row(r["channel"], short(r["spend"]), f"{r['leads']:,}", f"{r['funded']:,}",
                      short(r["funded_volume"]), short(r["cost_per_lead"]), short(r["cost_per_funded"]),
                      pct(r["return_on_spend"]))  # fmt: skip
    out.append(table)
    return out


def experiments(doc: dict[str, Any]) -> list[Shown]:
    """One table per split with its verdicts in words, and uplift targeting where a model ran."""
    out: list[Shown] = []
    if not doc["splits"]:
        out.append("No published journey has a split step.")
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
        out.append(table)
        out.append("\n".join(verdicts))
        if split.get("uplift_targeting"):
            out.append(_uplift_targeting_text(split["uplift_targeting"]))
    return out


def engagement(doc: dict[str, Any]) -> list[Shown]:
    """Clicks on tracked links per journey step."""
    out: list[Shown] = []
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
    out.append(table)
    return out


def daily(doc: dict[str, Any]) -> list[Shown]:
    """Each day's activity, with a total row."""
    out: list[Shown] = []
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
    out.append(table)
    return out


def tasks(doc: dict[str, Any]) -> list[Shown]:
    """The officers' task queues, then each queue's outcomes."""
    out: list[Shown] = []
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
    out.append(table)
    for q in doc["queues"]:
        if q["outcomes"]:
            out.append(f"{q['queue']}: " + ", ".join(f"{k} {v}" for k, v in q["outcomes"].items()))
    return out


def scores(doc: dict[str, Any]) -> list[Shown]:
    """One table per kind of score, by band."""
    out: list[Shown] = []
    if not doc["kinds"]:
        out.append("No lead has been scored yet.")
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
        out.append(table)
    return out


def flows(doc: dict[str, Any]) -> list[Shown]:
    """Each journey's steps in order."""
    out: list[Shown] = []
    for j in doc["journeys"]:
        table = report_table(
            f"{j['journey_id']} v{j['version']}: {j['entered']:,} entered",
            ["step", "kind", "reached", "now", "sent", "skipped", "failed"],
            wrap=2,
        )
        for st in j["steps"]:
            table.add_row(st["step"], st["kind"], f"{st['reached']:,}", f"{st['active']:,}", f"{st['sent']:,}",
                          f"{st['skipped']:,}", f"{st['failed']:,}")  # fmt: skip
        out.append(table)
    return out


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


def costs_list(doc: dict[str, Any]) -> list[Shown]:
    """Every cost recorded and the referral rewards paid."""
    table = report_table(f"Marketing costs ({doc['currency']})", ["kind: name", "period", "amount", "note"], wrap=2,
                         text_last=True)  # fmt: skip
    for r in doc["costs"]:
        table.add_row(f"{r['kind']}: {r['name']}", r["period_label"], f"{r['amount']:,.2f}", r["note"] or r["source"])
    return [table]
