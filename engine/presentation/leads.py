"""How a lead looks in a terminal: its header (stage, audience, consents, scores with their
reasons) and its timeline, every event with its reason; and what an erasure did."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import RenderableType
from rich.text import Text

from engine.presentation.tables import plain_table


def timeline(doc: dict[str, Any], zone: ZoneInfo) -> list[RenderableType]:
    """``huoke leads show``: the lead, then its timeline in the lender's time zone."""
    out: list[RenderableType] = []
    lead = doc["lead"]
    if lead["erased"]:
        out.append(
            Text.assemble(("erased", "bold red"), ": this person asked to be forgotten; personal data is unreadable")
        )
    out.append(
        Text.assemble(
            (lead["name"] or "(erased)", "bold"),
            f" {lead['id']}  stage ",
            (lead["stage"], "cyan"),
            f"  audience {lead['audience']}  tier {lead['tier']}  language {lead['language']}",
        )
    )
    out.append(
        f"source {lead['source'].get('channel')} {lead['source'].get('partner') or ''}  "
        f"segments {', '.join(lead['segments']) or '—'}  consents "
        + (", ".join(f"{k}={'yes' if v else 'no'}" for k, v in lead["consents"].items()) or "none")
    )
    for kind, sc in lead["scores"].items():
        score = f"score {sc['score']}, " if sc["score"] is not None else ""
        band = Text.assemble(f"{kind} v{sc['model_version']}: {score}band ", (str(sc["band"]), "bold"))
        out.append(band.append(f" (p={sc['probability']:.1%})"))
        for r in sc["reasons"]:
            out.append(
                f"  {r['code']} {r['characteristic']} = {r['value']}: {r['points']:.0f} of {r['max_points']:.0f} points"
            )
    table = plain_table(caption=f"times in {zone.key}; L lead, J journey, D delivery")
    for col in ("when", ""):
        table.add_column(col, no_wrap=True)
    for col in ("what", "why"):
        table.add_column(col, overflow="fold")
    for item in doc["timeline"]:
        if item["event"] == "Enrolment.StepReached":
            continue
        when = datetime.fromisoformat(item["at"]).astimezone(zone)
        table.add_row(f"{when:%Y-%m-%d %H:%M}", item["source"][0].upper(), item["what"], item["why"])
    out.append(table)
    return out


def erasure(doc: dict[str, Any]) -> list[RenderableType]:
    """What an erasure ended, cancelled and closed, and what the law keeps."""
    return [
        f"lead {doc['lead_id']} erased: {doc['enrolments_ended']} journey(s) ended, "
        f"{doc['messages_cancelled']} pending message(s) cancelled, {doc['tasks_closed']} open task(s) closed",
        "kept: " + "; ".join(doc["retained"]),
    ]
