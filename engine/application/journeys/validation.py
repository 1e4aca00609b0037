"""Load-and-validate of marketers' definitions: every problem, with file and line, at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.application.configuration import CONFIG_FILES, QUEUES_FILE, Configuration, load_configuration
from engine.application.journeys.catalog import TemplateCatalog, check_templates, offer_warnings
from engine.domain.delivery.contact_policy import DEFAULT_POLICY, ContactPolicy
from engine.domain.journeys.desk import NO_DESK, Desk
from engine.domain.journeys.journey import BranchStep, Journey, TaskStep
from engine.domain.journeys.parsing import parse_journey
from engine.domain.leads.segments import SegmentRules
from engine.domain.referrals.programme import NO_PROGRAMMES, Programmes
from engine.domain.screening.products import Catalogue
from engine.domain.shared.errors import JourneyValidationError


@dataclass(frozen=True)
class Definitions:
    """Validated journeys (with their raw definitions) and segment rules."""

    journeys: list[tuple[Journey, dict[str, Any]]]
    rules: SegmentRules
    policy: ContactPolicy = DEFAULT_POLICY
    catalogue: Catalogue | None = None
    desk: Desk = NO_DESK
    #: What validation lets through but a reviewer should look at (file, line, why).
    warnings: tuple[str, ...] = ()
    #: Referral programmes (referrals.yaml).
    programmes: Programmes = NO_PROGRAMMES


def journey_files(paths: list[Path]) -> list[Path]:
    """The journey files named: each file as given, each folder's ``*.yaml`` (configuration
    files and names starting with ``_`` left out)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.glob("*.y*ml") if p.name not in CONFIG_FILES and not p.name.startswith("_"))
        else:
            found.append(path)
    return found


def load_definitions(
    folder: Path,
    catalog: TemplateCatalog,
    load: Callable[[Path], Any],
    strip: Callable[[Any], Any],
    only: list[Path] | None = None,
    config: Path | None = None,
) -> Definitions:
    """Validate the configuration (``config``, by default ``folder/config``) and every journey
    in ``folder`` (or in ``only``: files and folders); raise listing every problem at once."""
    problems: list[str] = []
    warnings: list[str] = []
    config_folder = config or folder / "config"
    try:
        configuration = load_configuration(config_folder, load, strip, legacy=folder)
    except JourneyValidationError as e:
        problems += e.problems
        configuration = Configuration()
    rules = configuration.rules
    paths = journey_files(only if only is not None else [folder])
    journeys: list[tuple[Journey, dict[str, Any]]] = []
    seen: dict[str, Path] = {}
    for path in paths:
        if path.name in CONFIG_FILES:
            problems.append(f"{path}: a configuration file, not a journey (configuration is read from {config_folder})")
            continue
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
        problems += _check_queues(journey, configuration.desk)
        warnings += offer_warnings(journey, catalog)
        journeys.append((journey, strip(data)))
    if not paths and only != []:  # ``only=[]``: the configuration alone, no journey asked for
        problems.append(f"{', '.join(str(p) for p in only or [folder])}: no journey files (*.yaml) found")
    if problems:
        raise JourneyValidationError(problems)
    return Definitions(
        journeys,
        rules,
        configuration.policy,
        configuration.catalogue,
        configuration.desk,
        tuple(warnings),
        configuration.programmes,
    )


def _check_queues(journey: Journey, desk: Desk) -> list[str]:
    """With a desk file, every task goes to a queue it lists (a typo would strand the task)."""
    if not desk.queues:
        return []
    return [
        f"{journey.source}:{step.line}: step '{step.id}': queue {step.queue!r} is not in {QUEUES_FILE} "
        f"(queues: {', '.join(sorted(desk.queues))})"
        for step in journey.steps.values()
        if isinstance(step, TaskStep) and step.queue not in desk.queues
    ]


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
