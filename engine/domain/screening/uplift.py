"""Uplift (persuadability), the pure part: what an uplift model's numbers mean to a marketer.

An uplift model estimates, per lead, how much a journey's messages change the chance that the
lead applies: ``uplift = P(apply | messaged) - P(apply | held out)``, learnt from the journey's
random holdout (DOMAIN.md: keep holdout groups). Its bands are the four a marketer acts on:

* ``persuadable`` — messaging raises the chance to apply by ``persuadable_at`` or more: message;
* ``do_not_disturb`` — messaging lowers it by more than ``-disturb_below``: leave alone;
* ``sure_thing`` — messaging changes little and the lead is likely to apply anyway (twice as
  likely unprompted as the training window's average lead, or 50%): a message is wasted, and
  counts against caps;
* ``lost_cause`` — messaging changes little and the lead is unlikely to apply either way.

A lead's uplift score is recorded as ``Lead.Scored`` with kind ``uplift:<journey id>``: its
``probability`` is the chance to apply if messaged, its ``score`` the uplift in basis points
(+250 = 2.5 percentage points), its ``band`` one of the four above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UPLIFT = "uplift"
PERSUADABLE, SURE_THING, LOST_CAUSE, DO_NOT_DISTURB = "persuadable", "sure_thing", "lost_cause", "do_not_disturb"
UPLIFT_BANDS = (PERSUADABLE, SURE_THING, LOST_CAUSE, DO_NOT_DISTURB)
#: Uplift is scored in basis points of probability (1 percentage point = 100).
BASIS_POINTS = 10_000


def uplift_kind(journey_id: str) -> str:
    """The score kind of a journey's uplift model (a lead holds one uplift score per journey)."""
    return f"{UPLIFT}:{journey_id}"


def journey_of(score_kind: str) -> str | None:
    """The journey an uplift score kind is for (None for the other kinds)."""
    prefix = f"{UPLIFT}:"
    return score_kind[len(prefix) :] if score_kind.startswith(prefix) else None


@dataclass(frozen=True)
class UpliftBands:
    """Where the four bands start, fixed when the model is trained (kept with its file and in
    the registry, so a band's meaning is on record)."""

    #: Lift (as a probability: 0.02 = 2 points) from which messaging is worth it.
    persuadable_at: float = 0.02
    #: Lift below which messaging costs applications (negative).
    disturb_below: float = -0.02
    #: Chance to apply unprompted from which a lead with little lift is a sure thing.
    sure_thing_at: float = 0.5

    def band(self, uplift: float, unprompted: float) -> str:
        if uplift < self.disturb_below:
            return DO_NOT_DISTURB
        if uplift >= self.persuadable_at:
            return PERSUADABLE
        return SURE_THING if unprompted >= self.sure_thing_at else LOST_CAUSE

    def as_dict(self) -> dict[str, float]:
        return {
            "persuadable_at": self.persuadable_at,
            "disturb_below": self.disturb_below,
            "sure_thing_at": self.sure_thing_at,
        }

    @classmethod
    def of(cls, doc: dict[str, Any]) -> UpliftBands:
        return cls(float(doc["persuadable_at"]), float(doc["disturb_below"]), float(doc["sure_thing_at"]))

    def describe(self) -> dict[str, str]:
        """Each band's rule, as a marketer reads it."""
        return {
            PERSUADABLE: f"messaging raises the chance to apply by {self.persuadable_at:.1%} or more",
            DO_NOT_DISTURB: f"messaging lowers the chance to apply by more than {-self.disturb_below:.1%}",
            SURE_THING: f"little lift, and {self.sure_thing_at:.1%}+ likely to apply unprompted",
            LOST_CAUSE: f"little lift, and under {self.sure_thing_at:.1%} likely to apply either way",
        }
