"""How the model and segment commands show their documents: held-out metrics, calibration by
band, the uplift model's Qini curve and lift per band, versions, drift and monitoring, segments."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from engine.presentation.tables import note, plain_table


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


def train(doc: dict[str, Any], kind: str) -> list[RenderableType]:
    """A training: the method, the held-out metrics (or the Qini curve), features and file."""
    out: list[RenderableType] = []
    t = doc["training"]
    out.append(
        Text.assemble(
            (f"{kind} v{doc['version']}", "bold"),
            f" registered — {t['method']}\n"
            f"trained on {t['train_rows']} rows, tested on {t['test_rows']} ({t['holdout']}) from {t['source']}",
        )
    )
    if kind == "uplift":
        out.extend(uplift_tables(doc["metrics"]))
        bands = t.get("bands", {})
        out.append(
            f"bands: persuadable from {bands.get('persuadable_at', 0):+.1%} lift, do-not-disturb below "
            f"{bands.get('disturb_below', 0):+.1%}, sure thing from {bands.get('sure_thing_at', 0):.1%} unprompted; "
            f"journey {doc['journey']} branches on uplift_band"
        )
    else:
        out.append(metrics_table("held-out performance", doc["metrics"]))
        out.append(calibration_table(doc["metrics"]))
    out.append(f"features: {', '.join(doc['features'])}")
    out.append(f"file {doc['artefact']}  sha256 {doc['sha256'][:16]}…  leads rescored: {doc['leads_rescored']}")
    for w in doc["warnings"]:
        out.append(note(("note:", "yellow"), f" {w}"))
    return out


def model_list(doc: dict[str, Any]) -> list[RenderableType]:
    """Every registered version with its held-out metrics; uplift models apart."""
    out: list[RenderableType] = []
    rows = doc["models"]
    if not rows:
        out.append("no models yet: huoke model train propensity --from-store (or credit --csv FILE --target COLUMN)")
        return out
    table = plain_table("models (* in use; metrics on each one's held-out later window)")
    for col in ("kind", "v", "trained", "rows", "AUC", "Gini", "KS", "Brier"):
        table.add_column(col, no_wrap=True)
    for r in (r for r in rows if r["kind"] != "uplift"):
        table.add_row(
            r["kind"],
            f"{r['version']}{' *' if r['active'] else ''}",
            r["trained_at"][:10],
            str(r["rows"]),
            *("—" if r[k] is None else f"{r[k]:.3f}" for k in ("auc", "gini", "ks", "brier")),
        )
    if table.row_count:
        out.append(table)
    uplift = plain_table("uplift models (* in use for their journey; Qini on the held-out later window)")
    for col in ("journey", "v", "trained", "rows", "Qini", "top 30% vs random"):
        uplift.add_column(col, no_wrap=True)
    for r in (r for r in rows if r["kind"] == "uplift"):
        uplift.add_row(
            r["journey"] or "—",
            f"{r['version']}{' *' if r['active'] else ''}",
            r["trained_at"][:10],
            str(r["rows"]),
            num(r["qini"], ".4f"),
            "—" if r["gain_top_30"] is None else f"{r['gain_top_30']:.2f}×",
        )
    if uplift.row_count:
        out.append(uplift)
    for r in rows:
        out.append(f"{r['kind']} v{r['version']}: by {r['trained_by']} from {r['source']}; file {r['artefact']}")
        for warning in r["calibration_warnings"]:
            out.append(
                Text.assemble(("  calibration off: ", "yellow"), warning, " — its probabilities are not to be "
                              "read as rates; retrain on recent outcomes")
            )  # fmt: skip
    return out


def rollback(doc: dict[str, Any], kind: str) -> list[RenderableType]:
    """A rollback: which version came back."""
    out: list[RenderableType] = []
    out.append(
        f"{kind} v{doc['version']} registered: the model of v{doc['restored_from']} again "
        f"(replacing v{doc['replaced']}); leads rescored: {doc['leads_rescored']}"
    )
    return out


def evaluate(doc: dict[str, Any], kind: str) -> list[RenderableType]:
    """A registered model measured on outcomes it has not seen."""
    out: list[RenderableType] = []
    out.append(Text.assemble((f"{kind} v{doc['version']}", "bold"), f" on {doc['data']}"))
    if kind == "uplift":
        out.extend(uplift_tables(doc["metrics"]))
        return out
    out.append(metrics_table("now", doc["metrics"]))
    out.append(metrics_table("when trained (its held-out window)", doc["at_training"]))
    out.append(calibration_table(doc["metrics"]))
    return out


def score(doc: dict[str, Any], kind: str) -> list[RenderableType]:
    """A prospect list scored: bands and missing characteristics."""
    out: list[RenderableType] = []
    bands = ", ".join(f"{b} {n}" for b, n in doc["bands"].items())
    out.append(f"scored {doc['rows']} rows with {kind} v{doc['version']} → {doc['out']}  ({bands})")
    if doc["missing_features"]:
        missing = ", ".join(doc["missing_features"])
        out.append(note(("note:", "yellow"), f" the file has no {missing}: scored as missing"))
    return out


def drift(doc: dict[str, Any], kind: str) -> list[RenderableType]:
    """PSI of each characteristic against the training sample."""
    out: list[RenderableType] = []
    table = plain_table(f"{kind} v{doc['version']}: {doc['population']} against the training sample")
    for col in ("characteristic", "PSI", "verdict"):
        table.add_column(col)
    colour = {"stable": "green", "investigate": "yellow", "shifted": "red"}
    for row in doc["psi"]:
        table.add_row(row["characteristic"], f"{row['psi']:.3f}", Text(row["verdict"], style=colour[row["verdict"]]))
    out.append(table)
    return out


def monitor(doc: dict[str, Any]) -> list[RenderableType]:
    """Every measurement of the models in use: drift and calibration over time."""
    out: list[RenderableType] = []
    history = doc["history"]
    if not history:
        out.append("nothing measured: no model in use has 50 leads captured in the last 30 days")
        return out
    table = plain_table("models in use over time (PSI of the score: < 0.10 stable, 0.10-0.25 investigate)")
    for col in ("measured", "model", "leads", "score PSI", "moved", "calibration"):
        table.add_column(col)
    for m in history:
        table.add_row(m["at"][:10], m["model"], str(m["leads"]), f"{m['score_psi']:.3f} {m['verdict']}",
                      ", ".join(m["moved"]) or "none", m["calibration"])  # fmt: skip
    out.append(table)
    return out


def segments(doc: dict[str, Any]) -> list[RenderableType]:
    """Every segment with its size now, and the leads per score band."""
    out: list[RenderableType] = []
    table = plain_table(f"segments (rules {doc['rules_version']})")
    table.add_column("segment")
    table.add_column("leads", justify="right")
    table.add_column("what it is", overflow="fold")
    for r in doc["segments"]:
        table.add_row(r["segment"], str(r["leads"]), r["description"])
    out.append(table)
    if doc["bands"]:
        t = plain_table("score bands")
        for col in ("model", "version", "band", "leads"):
            t.add_column(col)
        for b in doc["bands"]:
            t.add_row(b["kind"], str(b["model_version"]), b["band"], str(b["leads"]))
        out.append(t)
    return out
