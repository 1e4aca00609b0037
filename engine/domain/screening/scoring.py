"""Scoring, the pure part: scorecards as points tables, bands, reason codes, PSI and the
fair-lending guard on features (DOMAIN.md: scorecards, two models, prohibited bases).

A scorecard scores by lookup: each characteristic's bin carries points, the points add up to
the score, and the score maps back to a probability with the scaling below. No library is
needed to score, so a scorecard runs in the flow at plain-Python speed and every point can be
shown to a loan officer or an examiner.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.domain.shared.errors import HuokeError, ProhibitedFeatureError

#: 600 points at 50:1 good:bad odds, 20 points to double the odds (DOMAIN.md).
BASE_SCORE = 600.0
BASE_ODDS = 50.0
PDO = 20.0
FACTOR = PDO / math.log(2)  # 28.854
OFFSET = BASE_SCORE - FACTOR * math.log(BASE_ODDS)  # 487.123

MAX_REASONS = 4
MISSING = "missing"
OTHER = "other"

#: Words that name a prohibited basis or a direct stand-in for one (ECOA/Reg B, PIPL art. 24).
_PROHIBITED_WORDS = frozenset(
    {
        "age",
        "birth",
        "dob",
        "birthday",
        "born",
        "sex",
        "gender",
        "marital",
        "married",
        "spouse",
        "race",
        "racial",
        "ethnic",
        "ethnicity",
        "religion",
        "religious",
        "faith",
        "national",
        "nationality",
        "citizenship",
        "origin",
        "hukou",
    }
)


def prohibited(columns: Iterable[str]) -> list[str]:
    """The columns whose names name a prohibited basis, e.g. age, applicant_age, gender_code."""
    out = []
    for column in columns:
        words = set(re.split(r"[^a-z]+", column.lower()))
        if words & _PROHIBITED_WORDS:
            out.append(column)
    return out


def refuse_prohibited(columns: Iterable[str]) -> None:
    """Raise ProhibitedFeatureError if any column is a prohibited basis."""
    bad = prohibited(columns)
    if bad:
        raise ProhibitedFeatureError(bad)


def score_to_probability(score: float) -> float:
    """Probability of going bad for a score on the 600 @ 50:1, PDO 20 scale."""
    return 1.0 / (1.0 + math.exp((score - OFFSET) / FACTOR))


def probability_to_score(p_bad: float) -> float:
    """The score whose probability of going bad is ``p_bad``."""
    p = min(max(p_bad, 1e-9), 1 - 1e-9)
    return OFFSET + FACTOR * math.log((1 - p) / p)


@dataclass(frozen=True)
class Bin:
    """One bin of a characteristic: numeric values up to ``upper`` (inclusive) or a set of
    categories; its weight of evidence and points, and how it looked in training."""

    label: str
    points: float
    woe: float
    upper: float | None = None  # numeric: values <= upper (None: no upper bound)
    categories: tuple[str, ...] = ()  # categorical: values in this set
    count: int = 0
    bad_rate: float = 0.0


@dataclass(frozen=True)
class Characteristic:
    """One scorecard characteristic: its bins in order, and the bin for a missing value."""

    name: str
    kind: str  # "numeric" or "categorical"
    bins: tuple[Bin, ...]
    missing: Bin
    other: Bin | None = None  # categorical: values not seen in training

    @property
    def max_points(self) -> float:
        return max(b.points for b in (*self.bins, self.missing))

    def bin_for(self, value: Any) -> Bin:
        if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
            return self.missing
        if self.kind == "numeric":
            try:
                x = float(value)
            except (TypeError, ValueError):
                return self.missing
            for b in self.bins:
                if b.upper is None or x <= b.upper:
                    return b
            return self.bins[-1]
        text = str(value)
        for b in self.bins:
            if text in b.categories:
                return b
        return self.other or self.missing


@dataclass(frozen=True)
class Reason:
    """Why a score is not higher: a characteristic whose points fall short of its best bin. An
    uplift model's reason (``unit="lift"``) says how far the value moves the lead's uplift, in
    percentage points, from what a typical lead's value would give."""

    code: str
    characteristic: str
    value: str
    points: float
    max_points: float
    unit: str = "points"

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "code": self.code,
            "characteristic": self.characteristic,
            "value": self.value,
            "points": round(self.points, 1),
            "max_points": round(self.max_points, 1),
        }
        if self.unit != "points":
            doc["unit"] = self.unit
        return doc

    def text(self) -> str:
        if self.unit == "lift":
            return f"{self.code} {self.characteristic} = {self.value}: {self.points:+.1f} points of lift"
        return f"{self.code} {self.characteristic} = {self.value}: {self.points:.0f} of {self.max_points:.0f} points"


@dataclass(frozen=True)
class Band:
    """A score band: the lowest score (scorecards) or probability (propensity) it starts at."""

    id: str
    min: float


@dataclass(frozen=True)
class Scored:
    """One row's result: probability, score (scorecards), band and reasons."""

    probability: float
    score: int | None
    band: str
    reasons: tuple[Reason, ...] = ()


def band_of(bands: Sequence[Band], value: float) -> str:
    """The first band (highest first) whose minimum ``value`` reaches."""
    for b in bands:
        if value >= b.min:
            return b.id
    return bands[-1].id if bands else ""


#: Credit pre-screen bands by score (A best). Odds at 660: ~625:1... at 540: ~6:1.
DEFAULT_SCORE_BANDS: tuple[Band, ...] = (
    Band("A", 660),
    Band("B", 620),
    Band("C", 580),
    Band("D", 540),
    Band("E", float("-inf")),
)


@dataclass(frozen=True)
class Scorecard:
    """A credit scorecard as a points table; scores by lookup, explains by shortfall."""

    characteristics: tuple[Characteristic, ...]
    bands: tuple[Band, ...] = DEFAULT_SCORE_BANDS
    target: str = "bad"
    meta: dict[str, Any] = field(default_factory=dict)
    #: Platt scaling fitted on a later window than the points (slope, intercept on the score's
    #: log-odds): the probability of going bad follows recent outcomes while the points, the
    #: bands and the reason codes stay as the points table says. None: the scaling's own odds.
    calibration: tuple[float, float] | None = None

    def probability(self, score: float) -> float:
        """The probability of going bad for a score (calibrated when the scorecard is)."""
        if self.calibration is None:
            return score_to_probability(score)
        slope, intercept = self.calibration
        z = slope * (score - OFFSET) / FACTOR + intercept
        return 1.0 / (1.0 + math.exp(-max(-700.0, min(700.0, z))))

    @property
    def features(self) -> list[str]:
        return [c.name for c in self.characteristics]

    def points(self, row: dict[str, Any]) -> list[tuple[Characteristic, Bin]]:
        return [(c, c.bin_for(row.get(c.name))) for c in self.characteristics]

    def score(self, row: dict[str, Any]) -> Scored:
        """Score one row: the points add up to the score; the score gives the probability.
        Reasons: up to four characteristics whose points fall furthest below their best bin;
        each keeps its code (R + its place in the scorecard) across leads."""
        parts = self.points(row)
        total = sum(b.points for _, b in parts)
        shortfalls = sorted(
            (
                (c.max_points - b.points, n, c, b)
                for n, (c, b) in enumerate(parts)
                # A missing value is scored (its own bin) but is no reason: often it does not apply.
                if c.max_points - b.points > 0.5 and b is not c.missing
            ),
            key=lambda t: (-t[0], t[1]),
        )
        reasons = tuple(
            Reason(
                code=f"R{n + 1:02d}",
                characteristic=c.name,
                value=_shown(row.get(c.name), b),
                points=b.points,
                max_points=c.max_points,
            )
            for _, n, c, b in shortfalls[:MAX_REASONS]
        )
        return Scored(
            probability=self.probability(total),
            score=round(total),
            band=band_of(self.bands, total),
            reasons=reasons,
        )

    def score_many(self, rows: Sequence[dict[str, Any]]) -> list[Scored]:
        return [self.score(r) for r in rows]

    # ---- the points table as plain JSON ----------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "huoke.scorecard/1",
            "scaling": {"base_score": BASE_SCORE, "base_odds": BASE_ODDS, "pdo": PDO},
            "target": self.target,
            "bands": [{"id": b.id, "min": None if math.isinf(b.min) else b.min} for b in self.bands],
            "characteristics": [
                {
                    "name": c.name,
                    "kind": c.kind,
                    "bins": [_bin_json(b) for b in c.bins],
                    "missing": _bin_json(c.missing),
                    "other": _bin_json(c.other) if c.other else None,
                }
                for c in self.characteristics
            ],
            "meta": self.meta,
            **({"calibration": {"slope": self.calibration[0], "intercept": self.calibration[1]}}
               if self.calibration else {}),
        }  # fmt: skip

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Scorecard:
        if doc.get("format") != "huoke.scorecard/1":
            raise HuokeError(f"not a huoke scorecard (format {doc.get('format')!r})")
        scaling = doc.get("scaling", {})
        if (scaling.get("base_score"), scaling.get("base_odds"), scaling.get("pdo")) != (BASE_SCORE, BASE_ODDS, PDO):
            raise HuokeError(f"scorecard scaling {scaling} differs from 600 @ 50:1, PDO 20")
        chars = tuple(
            Characteristic(
                name=c["name"],
                kind=c["kind"],
                bins=tuple(_bin_from(b) for b in c["bins"]),
                missing=_bin_from(c["missing"]),
                other=_bin_from(c["other"]) if c.get("other") else None,
            )
            for c in doc["characteristics"]
        )
        refuse_prohibited(c.name for c in chars)
        bands = tuple(Band(b["id"], float("-inf") if b["min"] is None else float(b["min"])) for b in doc["bands"])
        calibration = doc.get("calibration")  # scorecards from before calibration have none
        platt = (float(calibration["slope"]), float(calibration["intercept"])) if calibration else None
        return cls(chars, bands, doc.get("target", "bad"), dict(doc.get("meta") or {}), platt)


def _shown(value: Any, b: Bin) -> str:
    if value is None or value == "":
        return MISSING
    return str(value) if b.categories or b.upper is None else f"{value} ({b.label})"


def _bin_json(b: Bin) -> dict[str, Any]:
    return {
        "label": b.label,
        "points": b.points,
        "woe": b.woe,
        "upper": b.upper,
        "categories": list(b.categories),
        "count": b.count,
        "bad_rate": round(b.bad_rate, 6),
    }


def _bin_from(d: dict[str, Any]) -> Bin:
    return Bin(
        label=str(d["label"]),
        points=float(d["points"]),
        woe=float(d.get("woe", 0.0)),
        upper=None if d.get("upper") is None else float(d["upper"]),
        categories=tuple(str(c) for c in d.get("categories") or ()),
        count=int(d.get("count", 0)),
        bad_rate=float(d.get("bad_rate", 0.0)),
    )


# ---- drift -----------------------------------------------------------------------------------


def psi(expected: Sequence[float], actual: Sequence[float], floor: float = 1e-4) -> float:
    """Population stability index between two distributions over the same bins (counts or shares)."""
    e_total, a_total = sum(expected) or 1.0, sum(actual) or 1.0
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        pe, pa = max(e / e_total, floor), max(a / a_total, floor)
        total += (pa - pe) * math.log(pa / pe)
    return total


def psi_verdict(value: float) -> str:
    """DOMAIN.md: < 0.10 stable, 0.10–0.25 investigate, > 0.25 shifted."""
    if value < 0.10:
        return "stable"
    return "investigate" if value <= 0.25 else "shifted"
