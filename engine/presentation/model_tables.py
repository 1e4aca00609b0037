"""How the model commands show a model's results: held-out metrics, calibration by band, the
uplift model's Qini curve and lift per band."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from engine.presentation.tables import plain_table


def uplift_tables(metrics: dict[str, Any]) -> list[Table]:
    """An uplift model's later-window results: the Qini curve against random targeting, and per
    band the predicted against the observed lift."""
    curve = plain_table(
        f"targeting by uplift vs at random ({metrics['rows']} held-out leads: {metrics['messaged']} messaged, "
        f"{metrics['held_out']} held out; Qini {num(metrics['qini'], '.4f')})"
    )
    for col in ("top", "leads", "extra applications", "at random"):
        curve.add_column(col, justify="right")
    for p in metrics["curve"]:
        curve.add_row(f"{p['share']:.0%}", str(p["leads"]), num(p["model"], ".1f"), num(p["random"], ".1f"))
    bands = plain_table("lift by uplift band (messaged rate less held-out rate)")
    for col in ("band", "leads", "messaged", "held out", "predicted", "observed"):
        bands.add_column(col, justify="right")
    for b in metrics["bands"]:
        bands.add_row(
            b["band"], str(b["rows"]), str(b["messaged"]), str(b["held_out"]),
            f"{b['predicted_lift']:+.1%}", "—" if b["observed_lift"] is None else f"{b['observed_lift']:+.1%}",
        )  # fmt: skip
    if metrics.get("note"):
        bands.caption = f"note: {metrics['note']}"
    return [curve, bands]


def num(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def metrics_table(title: str, metrics: dict[str, Any]) -> Table:
    table = plain_table(title)
    for col in ("rows", "positives", "AUC", "Gini", "KS", "Brier"):
        table.add_column(col, justify="right")
    table.add_row(
        *(
            str(metrics.get(k) if metrics.get(k) is not None else "—")
            for k in ("rows", "positives", "auc", "gini", "ks", "brier")
        )
    )
    return table


def calibration_table(metrics: dict[str, Any]) -> Table:
    table = plain_table("calibration by band (held-out rows)")
    for col in ("band", "rows", "predicted", "observed"):
        table.add_column(col, justify="right")
    for row in metrics.get("calibration", []):
        table.add_row(row["band"], str(row["rows"]), f"{row['predicted']:.1%}", f"{row['observed']:.1%}")
    return table
