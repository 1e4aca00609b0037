"""Segment rules: audience, tier and named segments from segments.yaml."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.adapters.yaml_files import load_yaml, strip_lines
from engine.domain.leads.segments import classify, parse_segment_rules
from engine.domain.shared.errors import JourneyValidationError

RULES = parse_segment_rules(
    strip_lines(load_yaml(Path(__file__).resolve().parents[2] / "journeys" / "config" / "segments.yaml"))
)


@pytest.mark.parametrize(
    ("facts", "audience", "tier"),
    [
        ({"age": 28, "employment_type": "salaried", "employer_kind": "state_owned"}, "young_professional", "prime"),
        ({"age": 30, "employment_type": "freelance"}, "young_professional", "near_prime"),
        ({"age": 45, "employment_type": "business_owner", "business_name": "Acme"}, "sme", "near_prime"),
        ({"age": 67, "employment_type": "retired"}, "senior", "other"),
        ({"age": 62, "employment_type": "salaried", "employer_kind": "government"}, "senior", "prime"),
        ({"age": 50, "employment_type": "salaried", "employer_kind": "small_private"}, "general", "near_prime"),
        ({}, "general", "other"),
    ],
)
def test_audience_and_tier(facts: dict[str, Any], audience: str, tier: str) -> None:
    c = classify(RULES, facts)
    assert (c.audience.value, c.tier.value) == (audience, tier)
    assert c.reasons["audience"] and c.reasons["tier"]


def test_multiple_segments() -> None:
    c = classify(RULES, {"loan_type": "mortgage", "dti": Decimal("0.5"), "source_channel": "partner_estate_agent"})
    assert c.segments == ["high_dti", "mortgage_interest", "partner_sourced"]


def test_tier_rules_may_not_use_a_prohibited_basis() -> None:
    data = {"tiers": [{"id": "prime", "when": {"field": "age", "between": [30, 50]}}]}
    with pytest.raises(JourneyValidationError) as info:
        parse_segment_rules(data)
    assert "prohibited basis" in info.value.problems[0]


def test_audience_ids_are_a_closed_set() -> None:
    with pytest.raises(JourneyValidationError) as info:
        parse_segment_rules({"audiences": [{"id": "millionaires", "when": "always"}]})
    assert "id must be one of" in info.value.problems[0]
