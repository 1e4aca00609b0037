"""Report queries: plain documents built from the views (the JSON the CLI prints)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from engine.application.engine import Engine
from engine.domain.values import STAGE_ORDER, Audience, Stage

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
                **{k: v.get(k, 0) for k in ("sent", "skipped", "failed", "retrying")},
            }
            for (j, s, c), v in sorted(messages.items())
        ],
    }
