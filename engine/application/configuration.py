"""The lender's configuration beside the journeys: segment rules, the product catalogue and the
contact policy, the agents' desk (and, later, referral programmes). One folder (``journeys/config`` by default),
validated on its own: every problem with file and line, at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from engine.domain.delivery.contact_policy import DEFAULT_POLICY, ContactPolicy, parse_contact_policy
from engine.domain.journeys.desk import NO_DESK, Desk, parse_desk
from engine.domain.leads.segments import SegmentRules, parse_segment_rules
from engine.domain.referrals.programme import NO_PROGRAMMES, Programmes, parse_programmes
from engine.domain.screening.products import Catalogue, parse_catalogue
from engine.domain.shared.errors import JourneyValidationError

T = TypeVar("T")

SEGMENTS_FILE = "segments.yaml"
POLICY_FILE = "contact_policy.yaml"
PRODUCTS_FILE = "products.yaml"
QUEUES_FILE = "queues.yaml"
REFERRALS_FILE = "referrals.yaml"
#: The configuration files; none of them is a journey.
CONFIG_FILES = frozenset({SEGMENTS_FILE, POLICY_FILE, PRODUCTS_FILE, QUEUES_FILE, REFERRALS_FILE})
NO_SEGMENTS = SegmentRules((), (), (), "none")


@dataclass(frozen=True)
class Configuration:
    """Validated configuration; an absent file gives its default."""

    rules: SegmentRules = NO_SEGMENTS
    policy: ContactPolicy = DEFAULT_POLICY
    catalogue: Catalogue | None = None
    #: The agents' queues and officers (none: every task queue is worked by hand).
    desk: Desk = NO_DESK
    #: Referral programmes (none: referrals are recorded but never rewarded).
    programmes: Programmes = NO_PROGRAMMES
    #: The files read, by name (for messages).
    files: tuple[Path, ...] = ()


def load_configuration(
    folder: Path, load: Callable[[Path], Any], strip: Callable[[Any], Any], legacy: Path | None = None
) -> Configuration:
    """Validate the configuration files in ``folder``. A file not there is looked for in
    ``legacy`` (the journeys folder itself, where older installations keep them)."""
    problems: list[str] = []
    files: list[Path] = []

    def optional(name: str, parse: Callable[[Any, str], T], default: T) -> T:
        path = folder / name
        if not path.exists() and legacy is not None and (legacy / name).exists():
            path = legacy / name
        if not path.exists():
            return default
        files.append(path)
        try:
            return parse(strip(load(path)), str(path))
        except JourneyValidationError as e:
            problems.extend(e.problems)
            return default

    rules = optional(SEGMENTS_FILE, parse_segment_rules, NO_SEGMENTS)
    policy = optional(POLICY_FILE, parse_contact_policy, DEFAULT_POLICY)
    catalogue: Catalogue | None = optional(PRODUCTS_FILE, parse_catalogue, None)
    desk = optional(QUEUES_FILE, parse_desk, NO_DESK)
    programmes = optional(REFERRALS_FILE, parse_programmes, NO_PROGRAMMES)
    if catalogue is not None:
        unknown = sorted(catalogue.exclude_segments - rules.segment_ids)
        if unknown:
            problems.append(f"{folder / PRODUCTS_FILE}: policy: exclude_segments {unknown} are not in {SEGMENTS_FILE}")
    if problems:
        raise JourneyValidationError(problems)
    return Configuration(rules, policy, catalogue, desk, programmes, tuple(files))
