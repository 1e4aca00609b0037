"""Validating journeys against the templates and the facts a lead can have."""

from __future__ import annotations

from typing import Protocol

from engine.domain.journeys.journey import Journey
from engine.domain.shared.fields import FIELDS

SYSTEM_VARS = frozenset({"sender_name", "postal_address", "unsubscribe_url", "confirm_url"})


class TemplateCatalog(Protocol):
    """Knows which templates exist and which variables they read."""

    def check(self, channel: str, template: str, locales: tuple[str, ...]) -> tuple[list[str], set[str]]: ...


def check_templates(journey: Journey, catalog: TemplateCatalog) -> list[str]:
    """Problems with a journey's templates: missing locales, unknown or possibly-missing fields."""
    problems: list[str] = []
    guaranteed = {f for f, spec in FIELDS.items() if spec.always} | set(journey.entry.requires)
    for step in journey.sends():
        where = f"{journey.source}:{step.line}: step '{step.id}'"
        found, used = catalog.check(step.channel, step.template, journey.locales)
        problems += [f"{where}: {p}" for p in found]
        for name in sorted(used - SYSTEM_VARS - set(journey.vars)):
            if name not in FIELDS:
                problems.append(f"{where}: template {step.template!r} uses unknown field {name!r}")
            elif name not in guaranteed:
                problems.append(
                    f"{where}: template {step.template!r} uses {name!r}, which a lead may not have; "
                    f"add it to entry.requires or remove it from the template"
                )
    return problems
