"""Where a lead came from, as the attribution reports read it: the channel, partner, campaign,
event and UTM tags of a source, and the key that tells one touch from another."""

from __future__ import annotations

from engine.domain.shared.values import JSONDict

#: What a source says about where a lead came from (the attribution dimensions).
ATTRIBUTION_KEYS = ("channel", "partner", "campaign", "event")
UTM_KEYS = ("source", "medium", "campaign")


def attribution_of(source: JSONDict) -> JSONDict:
    """The attribution part of a lead source: channel, partner, campaign, event and UTM tags."""
    utm = source.get("utm") or {}
    return {
        **{k: str(source.get(k) or "") for k in ATTRIBUTION_KEYS},
        "utm": {k: str(utm.get(k) or "") for k in UTM_KEYS},
    }


def touch_key(source: JSONDict) -> str:
    a = attribution_of(source)
    return "\x1f".join([*(a[k] for k in ATTRIBUTION_KEYS), *(a["utm"][k] for k in UTM_KEYS)])


def dimension_values(source: JSONDict) -> list[str]:
    """The attribution values of a source in the order of the reports' dimensions (channel,
    partner, campaign, UTM source, medium and campaign, event)."""
    a = attribution_of(source)
    return [
        a["channel"],
        a["partner"],
        a["campaign"],
        *(a["utm"][k] for k in ("source", "medium", "campaign")),
        a["event"],
    ]
