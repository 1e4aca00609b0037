"""Declarative segmentation: audience, financial tier and named segments from YAML rules."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from engine.domain.shared.conditions import check_condition, evaluate
from engine.domain.shared.errors import JourneyValidationError
from engine.domain.shared.values import PROHIBITED_BASES, Audience, Tier

#: Facts that are themselves segmentation outputs cannot feed the rules.
_DERIVED = frozenset({"audience", "tier", "segments"})


@dataclass(frozen=True)
class Rule:
    """One named rule: its id, condition and what it is for."""

    id: str
    when: Any
    description: str = ""


@dataclass(frozen=True)
class SegmentRules:
    """Ordered audience and tier rules (first match wins) and multi-membership segments."""

    audiences: tuple[Rule, ...]
    tiers: tuple[Rule, ...]
    segments: tuple[Rule, ...]
    version: str

    @property
    def segment_ids(self) -> frozenset[str]:
        return frozenset(r.id for r in self.segments)


@dataclass(frozen=True)
class Classification:
    """The outcome of classifying one lead, with the rule behind each part."""

    audience: Audience
    tier: Tier
    segments: list[str]
    reasons: dict[str, str]


def parse_segment_rules(data: Any, source: str = "segments.yaml") -> SegmentRules:
    """Validate raw YAML data into rules; raise listing every problem with its place."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise JourneyValidationError([f"{source}: expected a mapping at the top level"])
    unknown = set(data) - {"audiences", "tiers", "segments", "description"}
    if unknown:
        problems.append(f"{source}: unknown keys {sorted(unknown)}")

    def rules(section: str, allowed: set[str] | None, forbidden: frozenset[str]) -> list[Rule]:
        out: list[Rule] = []
        seen: set[str] = set()
        for n, raw in enumerate(data.get(section) or [], 1):
            where = f"{source}: {section}[{n}]"
            if not isinstance(raw, dict) or "id" not in raw or "when" not in raw:
                problems.append(f"{where}: each rule needs 'id' and 'when'")
                continue
            rid = str(raw["id"])
            where = f"{source}: {section} '{rid}'"
            if allowed is not None and rid not in allowed:
                problems.append(f"{where}: id must be one of {sorted(allowed)}")
            if rid in seen:
                problems.append(f"{where}: duplicate id")
            seen.add(rid)
            problems.extend(check_condition(raw["when"], where, forbidden))
            out.append(Rule(rid, raw["when"], str(raw.get("description", ""))))
        return out

    audiences = rules("audiences", {a.value for a in Audience}, _DERIVED)
    # Tiers decide financial standing, which feeds offers: no prohibited basis may enter them.
    tiers = rules("tiers", {t.value for t in Tier}, _DERIVED | PROHIBITED_BASES)
    segments = rules("segments", None, _DERIVED)
    if problems:
        raise JourneyValidationError(problems)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    return SegmentRules(tuple(audiences), tuple(tiers), tuple(segments), digest[:12])


def classify(rules: SegmentRules, facts: dict[str, Any]) -> Classification:
    """Apply the rules to one lead's facts (pure)."""
    reasons: dict[str, str] = {}
    audience, tier = Audience.GENERAL, Tier.OTHER
    for rule in rules.audiences:
        if evaluate(rule.when, facts):
            audience = Audience(rule.id)
            reasons["audience"] = f"rule '{rule.id}'"
            break
    else:
        reasons["audience"] = "no audience rule matched: general"
    for rule in rules.tiers:
        if evaluate(rule.when, facts):
            tier = Tier(rule.id)
            reasons["tier"] = f"rule '{rule.id}'"
            break
    else:
        reasons["tier"] = "no tier rule matched: other"
    segments = sorted(r.id for r in rules.segments if evaluate(r.when, facts))
    return Classification(audience, tier, segments, reasons)
