"""Score bands: leads per band of each model, with calibration and the model monitoring."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from engine.application.analytics.common import ALL_LEADS, Scope, _rate
from engine.application.engine import Engine
from engine.application.screening.models import monitoring_history
from engine.domain.screening.model_registry import CALIBRATION_MIN_ROWS, MODEL_KINDS, calibration_warnings

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
