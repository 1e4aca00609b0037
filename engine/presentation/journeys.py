"""How journeys look in a terminal: the valid and published journeys, a draft's differences, a
preview of one lead's path and messages, a backtest's counts, and a loan officer's task card."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from engine.presentation.tables import plain_table, report_table


def valid(rows: list[dict[str, Any]], rules_version: str) -> Group:
    """The journeys that validated, and the configuration's verdict."""
    table = plain_table("Valid journeys")
    for col in ("id", "name", "steps", "sends", "locales", "file"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"], r["name"], str(r["steps"]), str(r["sends"]), ", ".join(r["locales"]), r["file"])
    return Group(table, Text.assemble(("✓", "green"), f" configuration valid (segment rules {rules_version})"))


def overview(rows: list[dict[str, Any]]) -> Table:
    """Published journeys: live version, status, entries and leads there now."""
    legend = "now: leads in the journey now; file: the file differs from the published version"
    table = report_table("Journeys", ["id", "name", "version", "status", "entries", "now", "file"], legend, wrap=4)
    for r in rows:
        table.add_row(
            r["id"],
            r["name"],
            f"v{r['version']}",
            r["status"],
            str(r["entries"]),
            str(r["active"]),
            "changed" if r["unpublished_changes"] else "",
        )
    return table


def diff(doc: dict[str, Any]) -> list[RenderableType]:
    """A draft against the live version: steps and templates changed, leads there now, the moves a plan makes."""
    out: list[RenderableType] = []
    if doc["live_version"] is None:
        out.append(f"{doc['journey_id']} is not published yet: every step is new")
        return out
    out.append(Text.assemble((doc["journey_id"], "bold"), f": the draft against live v{doc['live_version']}"))
    for kind in ("added", "removed", "changed"):
        if doc[kind]:
            out.append(f"  steps {kind}: " + ", ".join(doc[kind]))
    for t in doc["templates"]:
        out.append(f"  step {t['step']}: template {t['from']} → {t['to']}")
    if not any(doc[k] for k in ("added", "removed", "changed", "templates")):
        out.append("  no step changed")
    now = ", ".join(f"{step} {n}" for step, n in sorted(doc["leads_now"].items()) if n) or "none"
    out.append(f"leads in the journey now: {now}")
    if doc["moves"]:
        out.append(_moves("With the plan, publishing would move", doc["moves"]))
    else:
        out.append("without a plan, leads in the journey stay on their version (--plan moves them)")
    return out


def preview(doc: dict[str, Any], zone: ZoneInfo) -> list[RenderableType]:
    """A preview: the lead, each step with its reason, and every message as it would leave."""
    out: list[RenderableType] = []

    def when(iso: str) -> str:
        return f"{datetime.fromisoformat(iso).astimezone(zone):%Y-%m-%d %H:%M}"

    if not doc["entered"]:
        out.append(Text.assemble(("not entered: ", "bold yellow"), doc["why"] or "the entry filter did not match"))
        return out
    lead = doc["lead"]
    offer = (lead.get("offer") or {}).get("name") or "no product fits"
    out.append(
        Text(f"lead: {lead.get('audience')}, {lead.get('tier')}, segments {', '.join(lead.get('segments', []))}; "
             f"offer: {offer}"),
    )  # fmt: skip
    for item in doc["path"]:
        line = Text(when(item["at"]) + " ", style="dim")
        line.append(
            item["what"], style="bold" if item["event"] in ("Enrolment.MessageRequested", "Enrolment.Exited") else ""
        )
        if item["why"]:
            line.append(f" — {item['why']}", style="dim")
        out.append(line)
    for m in doc["messages"]:
        head = Text.assemble((f"{when(m['at'])} {m['channel']} {m['template']} ({m['locale']})", "bold"))
        parts: list[Text | Padding] = [head]
        parts += [Text.assemble(("waited: ", "yellow"), reason) for reason in m["held"]]
        parts += [Text(f"subject: {m['subject']}")] if m.get("subject") else []
        parts.append(Padding(Text(m["text"].strip()), (0, 0, 0, 3)))
        out.append(Group(*parts))
    out.append(Text(f"times in {zone.key}; nothing was sent", style="dim"))
    return out


def simulation(reports: list[dict[str, Any]]) -> list[RenderableType]:
    """A backtest (or two versions side by side): leads per step, then the outcomes."""
    out: list[RenderableType] = []
    first = reports[0]
    names = [f"v{r['version']}" if r["version"] else "draft" for r in reports]
    out.append(
        Text.assemble(
            (first["journey_id"], "bold"), f" over {first['leads']} leads, {first['days']} days (nothing was sent)"
        )
    )
    table = plain_table("Per step: leads that reached it")
    table.add_column("step")
    for n in names:
        table.add_column(n, justify="right")
    for step in dict.fromkeys(s for r in reports for s in r["steps"]):
        table.add_row(step, *[str(r["steps"].get(step, "—")) for r in reports])
    out.append(table)
    summary = plain_table("Outcomes")
    summary.add_column("")
    for n in names:
        summary.add_column(n, justify="right")
    summary.add_row("entered", *[str(r["entered"]) for r in reports])
    for kind in ("refused", "goals", "exits", "splits", "tasks", "skipped"):
        labels = dict.fromkeys(k for r in reports for k in r[kind])
        for label in labels:
            summary.add_row(f"{kind}: {label}", *[str(r[kind].get(label, 0)) for r in reports])
    for key in dict.fromkeys((m["channel"], m["template"]) for r in reports for m in r["messages"]):
        counts = [sum(m["would_send"] for m in r["messages"] if (m["channel"], m["template"]) == key) for r in reports]
        summary.add_row(f"would send: {key[0]} {key[1]}", *[str(c) for c in counts])
    out.append(summary)
    return out


def is_past(moment: str | None, now: datetime) -> bool:
    return bool(moment) and datetime.fromisoformat(str(moment)) <= now


def task_card(t: dict[str, Any], zone: ZoneInfo, late: bool) -> Group:
    """One task as a loan officer reads it at 80 columns: what and when (``late``: past its
    service level), who to call (with the figures that matter), why, and where it stands."""
    lead = t["lead"]
    due = datetime.fromisoformat(t["due_at"]).astimezone(zone)
    who = t["agent"] or t["routed_to"]
    status = t["status"] + (f": {who}" if who else "") + (f" ({t['outcome']})" if t["outcome"] else "")
    if t["held_reason"] and not who and t["status"] != "done":
        status += f" — nobody can take it: {t['held_reason']}"
    if t["escalations"]:
        status += f" · escalated ×{t['escalations']}"
    money = lead["affordability"]
    figures = [
        f"DTI {float(money['dti']):.0%}" if "dti" in money else "",
        f"LTV {float(money['ltv']):.0%}" if "ltv" in money else "",
    ]
    if money.get("max_affordable"):
        figures.append(f"max {max(float(m['amount']) for m in money['max_affordable']):,.0f}")
    head = Text(f"{str(t['task_id'])[:8]}", style="bold")
    head.append(f"  {t['kind']} · {t['queue']} · due {due:%Y-%m-%d %H:%M}", style="")
    if late:
        head.append("  OVERDUE", style="bold red")
    person = f"{lead['name'] or '—'} ({lead['language'] or '?'})  {lead['phone'] or 'no phone'}"
    body = Text("\n").join(
        [
            Text(person + "".join(f" · {f}" for f in figures if f)),
            Text(t["note"]),
            Text(f"{t['journey_id']} / {t['step']} · {status}", style="dim"),
        ]
    )
    return Group(Text(""), head, Padding(body, (0, 0, 0, 2)))


def published(doc: dict[str, Any]) -> list[RenderableType]:
    """What a publish did (or, dry run, would do): each journey's new version and the moves of
    its leads in flight."""
    out: list[RenderableType] = []
    for r in doc["journeys"]:
        if not r["changed"]:
            out.append(f"{r['journey_id']}: unchanged (v{r['version']})")
            continue
        verb = "would publish" if doc["dry_run"] else "published"
        out.append(Text.assemble((r["journey_id"], "bold"), f": {verb} v{r['version']} (was v{r['previous_version']})"))
        if r["moves"]:
            out.append(_moves("In-flight enrolments", r["moves"]))
            out.append(f"{r['would_receive_again']} lead(s) would receive a message they already had")
        else:
            out.append("in-flight enrolments stay on their version (no migration plan)")
    return out


def _moves(title: str, moves: list[dict[str, Any]]) -> Table:
    """Where a migration plan moves in-flight enrolments: from which version and step, to where."""
    table = plain_table(title)
    for col in ("from version", "at step", "moves to", "enrolments"):
        table.add_column(col)
    for m in moves:
        table.add_row(f"v{m['from_version']}", m["from_step"], m["to"], str(m["enrolments"]))
    return table


def task_state(task: Any) -> str:
    """Where a task stands after an officer's action: its outcome, who has it, or its queue."""
    state = task.outcome or (
        f"claimed by {task.agent}"
        if task.agent
        else f"routed to {task.assigned}"
        if task.assigned
        else f"open in {task.queue}"
    )
    return f"task {str(task.id)[:8]}: {state}"
