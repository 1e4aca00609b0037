"""The why-trail of demo leads: ``huoke leads show --json``'s timeline for a small demo run.

``tests/fixtures/why_trails_before_lean_log.json`` holds what this gave before the lean event
log (issue 27); ``test_lean_log.py`` compares today's trails with it, line by line in meaning.
Made with: ``python -m tests.application.why_trails tests/fixtures/why_trails_before_lean_log.json``.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from demo.runner import run_demo
from engine.adapters.clock import VirtualClock
from engine.application.leads.commands import LeadRef
from engine.application.leads.timeline import lead_timeline
from engine.bootstrap import bootstrap, load_journey_definitions
from tests.conftest import base_settings

#: A run small enough for a test, long enough for waits, branches, tasks, clicks and goals.
LEADS, DAYS, SHOWN = 150, 30, 60


def why_trails(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Run the demo in ``folder``; the timelines of its first SHOWN leads (by source reference),
    each item as (event, what, why, at)."""
    s = base_settings(folder)
    doc = run_demo(s, LEADS, DAYS, folder, quiet=True, console=Console(file=io.StringIO()))
    engine = bootstrap(
        s, VirtualClock(datetime.fromisoformat(doc["clock_reached"])), definitions=load_journey_definitions(s)
    )
    try:
        with (folder / "leads.csv").open(encoding="utf-8") as rows:
            refs = sorted((r["source_channel"], r["external_id"]) for r in csv.DictReader(rows))
        refs = [ref for ref in refs if not ref[1].startswith("BAD-")][:SHOWN]  # the rows the demo refuses
        trails = {}
        for channel, external_id in refs:
            lead_id = engine.leads.find_lead(LeadRef(source_channel=channel, external_id=external_id))
            trails[f"{channel}:{external_id}"] = [
                {k: item[k] for k in ("at", "source", "event", "what", "why")}
                for item in lead_timeline(engine, lead_id)["timeline"]
            ]
        return trails
    finally:
        engine.close()


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        trails = why_trails(Path(tmp))
    Path(sys.argv[1]).write_text(json.dumps(trails, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
