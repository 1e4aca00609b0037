"""Load-and-validate of marketers' definitions: every problem, with file and line, at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from engine.application.journeys.catalog import TemplateCatalog, check_templates
from engine.domain.delivery.contact_policy import DEFAULT_POLICY, ContactPolicy, parse_contact_policy
from engine.domain.journeys.journey import BranchStep, Journey
from engine.domain.journeys.parsing import parse_journey
from engine.domain.leads.segments import SegmentRules, parse_segment_rules
from engine.domain.screening.products import Catalogue, parse_catalogue
from engine.domain.shared.errors import JourneyValidationError

T = TypeVar("T")

SEGMENTS_FILE = "segments.yaml"
POLICY_FILE = "contact_policy.yaml"
PRODUCTS_FILE = "products.yaml"


@dataclass(frozen=True)
class Definitions:
    """Validated journeys (with their raw definitions) and segment rules."""

    journeys: list[tuple[Journey, dict[str, Any]]]
    rules: SegmentRules
    policy: ContactPolicy = DEFAULT_POLICY
    catalogue: Catalogue | None = None


def load_definitions(
    folder: Path,
    catalog: TemplateCatalog,
    load: Callable[[Path], Any],
    strip: Callable[[Any], Any],
    only: list[Path] | None = None,
) -> Definitions:
    """Validate segments.yaml and every journey YAML in ``folder`` (or just ``only``)."""
    problems: list[str] = []

    def optional(name: str, parse: Callable[[Any, str], T], default: T) -> T:
        """A definitions file that may be absent; its problems join the others."""
        path = folder / name
        if not path.exists():
            return default
        try:
            return parse(strip(load(path)), str(path))
        except JourneyValidationError as e:
            problems.extend(e.problems)
            return default

    rules = optional(SEGMENTS_FILE, parse_segment_rules, SegmentRules((), (), (), "none"))
    policy = optional(POLICY_FILE, parse_contact_policy, DEFAULT_POLICY)
    catalogue: Catalogue | None = optional(PRODUCTS_FILE, parse_catalogue, None)
    if catalogue is not None:
        unknown = sorted(catalogue.exclude_segments - rules.segment_ids)
        if unknown:
            problems.append(f"{folder / PRODUCTS_FILE}: policy: exclude_segments {unknown} are not in {SEGMENTS_FILE}")
    special = {SEGMENTS_FILE, POLICY_FILE, PRODUCTS_FILE}
    paths = (
        only
        if only is not None
        else sorted(p for p in folder.glob("*.y*ml") if p.name not in special and not p.name.startswith("_"))
    )
    journeys: list[tuple[Journey, dict[str, Any]]] = []
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            data = load(path)
            journey = parse_journey(data, str(path))
        except JourneyValidationError as e:
            problems += e.problems
            continue
        if journey.id in seen:
            problems.append(f"{path}: journey id {journey.id!r} is also used by {seen[journey.id]}")
        seen[journey.id] = path
        problems += check_templates(journey, catalog)
        problems += _check_segments(journey, rules)
        journeys.append((journey, strip(data)))
    if not paths:
        problems.append(f"{folder}: no journey files (*.yaml) found")
    if problems:
        raise JourneyValidationError(problems)
    return Definitions(journeys, rules, policy, catalogue)


def _check_segments(journey: Journey, rules: SegmentRules) -> list[str]:
    """Branches and entry triggers may only name segments that segments.yaml defines."""
    problems = []
    seg = journey.entry.segment
    if journey.entry.on == "segment_entered" and seg not in rules.segment_ids:
        problems.append(
            f"{journey.source}: entry: unknown segment {seg!r} (segments.yaml defines "
            f"{', '.join(sorted(rules.segment_ids))})"
        )
    for step in journey.steps.values():
        if isinstance(step, BranchStep) and step.on == "segment":
            for case in step.cases:
                seg = case.when.get("eq")
                if seg is not None and seg not in rules.segment_ids:
                    problems.append(f"{journey.source}:{step.line}: step '{step.id}': unknown segment {seg!r}")
    return problems
