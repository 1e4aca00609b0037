"""How the dashboard shows the report documents: each table's rows (from the page's documents)
and columns, how a cell reads (rates as percentages, lifts in points, amounts with separators),
the KPI tiles' short amounts, and the CSV every table downloads as."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from engine.domain.marketing.costs import DIMENSIONS
from engine.domain.shared.values import MILESTONES
from engine.presentation.tables import lift_span

Column = tuple[str, str]  # (key in the row, heading)


def _funnel_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    total = d["attribution"]["total"]
    rows = [{"stage": "captured", "leads": total["leads"], "rate": 1.0 if total["leads"] else 0.0}]
    for m in MILESTONES:
        rows.append(
            {"stage": m, "leads": total[m], "rate": round(total[m] / total["leads"], 4) if total["leads"] else 0}
        )
    return rows


def _attribution_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for dim in DIMENSIONS:
        values = d["attribution"]["dimensions"][dim]
        if len(values) == 1 and values[0]["value"] == "(none)":
            continue
        rows += [{"dimension": dim.replace("_", " "), **r} for r in values]
    return rows


def _experiment_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for split in d["experiments"]["splits"]:
        for c in split["comparisons"]:
            rows.append(
                {"journey": split["journey_id"], "step": split["step"], **c,
                 "interval": lift_span(c["absolute_ci95"]), "any_look": lift_span(c["always_valid"]["ci95"]),
                 "act_now": c["always_valid"]["verdict"]}
            )  # fmt: skip
        targeting = split.get("uplift_targeting")
        for c in (targeting["targeted"], targeting["random"]) if targeting else ():
            rows.append(
                {"journey": split["journey_id"], "step": f"{split['step']}: uplift v{targeting['model_version']} "
                 f"since {targeting['since'][:10]}", **c, "goal": targeting["goal"],
                 "interval": lift_span(c["absolute_ci95"]), "any_look": lift_span(c["always_valid"]["ci95"]),
                 "act_now": c["always_valid"]["verdict"]}
            )  # fmt: skip
    return rows


def _flow_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"journey": j["journey_id"], **s} for j in d["flows"]["journeys"] for s in j["steps"]]


def _score_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"kind": k, **b} for k, bands in d["scores"]["kinds"].items() for b in bands]


def _monitoring_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            **m,
            "day": m["at"][:10],
            "drift": m["verdict"],
            "moved": ", ".join(m["moved"]) or "none",
        }
        for m in d["scores"]["monitoring"]
    ]


def _task_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            **q,
            "median_hours": q["hours_to_first_contact"]["median"],
            "p90_hours": q["hours_to_first_contact"]["p90"],
            "outcomes": ", ".join(f"{k} {v}" for k, v in q["outcomes"].items()),
        }
        for q in d["tasks"]["queues"]
    ]


STAGE_COLUMNS: list[Column] = [
    ("leads", "leads"),
    ("contacted", "contacted"),
    ("applied", "applied"),
    ("approved", "approved"),
    ("funded", "funded"),
    ("funded_volume", "volume"),
]
#: name → (title, rows of the page's data, columns)
TABLES: dict[str, tuple[str, Callable[[dict[str, Any]], list[dict[str, Any]]], list[Column]]] = {
    "funnel": ("Funnel", _funnel_rows, [("stage", "stage"), ("leads", "leads"), ("rate", "of captured")]),
    "attribution": (
        "Attribution",
        _attribution_rows,
        [("dimension", "by"), ("value", "value"), *STAGE_COLUMNS, ("funded_rate", "funded of leads")],
    ),
    "costs": (
        "Costs and return",
        lambda d: d["costs"]["by_cost"],
        [
            ("kind", "kind"),
            ("name", "name"),
            ("spend", "spend"),
            ("leads", "leads"),
            ("applied", "applied"),
            ("funded", "funded"),
            ("funded_volume", "volume"),
            ("cost_per_lead", "per lead"),
            ("cost_per_application", "per application"),
            ("cost_per_funded", "per funded loan"),
            ("return_on_spend", "return on spend"),
        ],
    ),
    "channels": (
        "Cost per funded loan by channel",
        lambda d: d["costs"]["by_channel"],
        [
            ("channel", "channel"),
            ("spend", "spend"),
            ("leads", "leads"),
            ("funded", "funded"),
            ("funded_volume", "volume"),
            ("cost_per_lead", "per lead"),
            ("cost_per_funded", "per funded loan"),
            ("return_on_spend", "return on spend"),
        ],
    ),
    "experiments": (
        "Splits and holdouts",
        _experiment_rows,
        [
            ("journey", "journey"),
            ("step", "split"),
            ("arm", "arm"),
            ("goal", "goal"),
            ("arm_leads", "leads"),
            ("arm_rate", "rate"),
            ("control_rate", "control"),
            ("absolute_lift", "lift"),
            ("interval", "95% (read once)"),
            ("any_look", "95% (any look)"),
            ("act_now", "act now"),
        ],
    ),
    "engagement": (
        "Clicks on tracked links",
        lambda d: [r for r in d["engagement"]["steps"] if r["sent"]],
        [
            ("journey_id", "journey"),
            ("step", "step"),
            ("template", "template"),
            ("channel", "channel"),
            ("sent", "sent"),
            ("clicked", "clicked"),
            ("click_through_rate", "click-through"),
            ("scanner_clicked", "scanner clicks"),
            ("applied_after_click", "applied after"),
            ("last_click_applications", "last-click applications"),
        ],
    ),
    "flows": (
        "Journey flows",
        _flow_rows,
        [
            ("journey", "journey"),
            ("step", "step"),
            ("kind", "kind"),
            ("reached", "reached"),
            ("active", "there now"),
            ("sent", "sent"),
            ("skipped", "skipped"),
            ("failed", "failed"),
            ("clicked", "clicked"),
        ],
    ),
    "daily": (
        "Each day",
        lambda d: d["daily"]["days"],
        [
            ("day", "day"),
            ("captured", "captured"),
            ("contacted", "contacted"),
            ("applied", "applied"),
            ("approved", "approved"),
            ("funded", "funded"),
            ("funded volume", "volume"),
            ("sent", "sent"),
            ("failed", "failed"),
            ("skipped", "skipped"),
        ],
    ),
    "scores": (
        "Score bands",
        _score_rows,
        [
            ("kind", "score"),
            ("band", "band"),
            ("leads", "leads"),
            ("applied", "applied"),
            ("funded", "funded"),
            ("application_rate", "applied of leads"),
            ("funded_rate", "funded of leads"),
            ("calibration", "model on its later window"),
        ],
    ),
    "monitoring": (
        "Models in use, measured weekly: drift and calibration over time",
        _monitoring_rows,
        [
            ("day", "measured"),
            ("model", "model"),
            ("leads", "leads (30 days)"),
            ("score_psi", "score PSI"),
            ("drift", "drift"),
            ("moved", "characteristics moved"),
            ("calibration", "calibration on recent outcomes"),
        ],
    ),
    "tasks": (
        "Officers' task queues",
        _task_rows,
        [
            ("queue", "queue"),
            ("created", "created"),
            ("open", "open"),
            ("overdue", "overdue"),
            ("done", "done"),
            ("escalated", "escalated"),
            ("median_hours", "median hours to contact"),
            ("p90_hours", "p90 hours to contact"),
            ("outcomes", "outcomes"),
        ],
    ),
    "referrals": (
        "Referral ledger",
        lambda d: d["referrals"]["by_programme_month"],
        [
            ("programme", "programme"),
            ("month", "month"),
            ("referrals", "referrals"),
            ("applied", "applied"),
            ("funded", "funded"),
            ("funded_volume", "volume"),
            ("paid", "rewards paid"),
            ("held", "held"),
            ("reward_cost", "reward cost"),
            ("cost_per_funded", "per funded referral"),
        ],
    ),
}
RATES = {
    "rate",
    "funded_rate",
    "application_rate",
    "arm_rate",
    "control_rate",
    "return_on_spend",
    "relative_lift",
    "click_through_rate",
}
POINTS = {"absolute_lift", "ci_low", "ci_high"}


def shown(value: Any, key: str) -> str:
    """A cell as the page shows it (the raw value stays in the cell's data-value)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and key in RATES:
        return f"{value:.1%}"
    if isinstance(value, int | float) and key in POINTS:
        return f"{value * 100:+.1f} pts"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def numeric_keys(rows: list[dict[str, Any]], columns: list[Column]) -> set[str]:
    """The columns of numbers (right-aligned, heading and empty cells too): rates, points and
    those whose first value is a number."""
    found = {key for key, _ in columns if key in RATES or key in POINTS}
    for key, _ in columns:
        first = next((r[key] for r in rows if r.get(key) is not None), None)
        if isinstance(first, int | float) and not isinstance(first, bool):
            found.add(key)
    return found


def compact(value: Any) -> str:
    """A large amount in a few characters (KPI tiles): 300.1M, 1.64M, 4,349."""
    if value is None:
        return "—"
    v = float(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M")):
        if abs(v) >= limit:
            return f"{v / limit:,.2f}{suffix}"
    return f"{v:,.0f}"


def csv_text(rows: list[dict[str, Any]], columns: list[Column]) -> str:
    """CSV of ``rows``; a text cell that a spreadsheet would run as a formula is quoted with '."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([label for _, label in columns])
    for r in rows:
        cells = []
        for key, _ in columns:
            v = r.get(key)
            text = "" if v is None else str(v)
            if isinstance(v, str) and text[:1] in ("=", "+", "-", "@", "\t", "\r"):
                text = "'" + text
            cells.append(text)
        writer.writerow(cells)
    return out.getvalue()
