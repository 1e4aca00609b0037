"""Validating journeys against the templates and the facts a lead can have."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from engine.domain.journeys.journey import BranchStep, Journey
from engine.domain.shared.fields import FIELDS

SYSTEM_VARS = frozenset(
    {"sender_name", "postal_address", "unsubscribe_url", "confirm_url", "referral_code", "referral_link"}
)
#: The fact a template shows when it states a rate: the matched product's APR, by IRR, fees included.
APR_FACT = "matched_apr"


@dataclass(frozen=True)
class TemplateReport:
    """What a template folder holds: its problems, the variables it reads (and those it reads
    only under ``{% if x is defined %}``), and where its text states a rate."""

    problems: list[str]
    used: set[str] = field(default_factory=set)
    guarded: set[str] = field(default_factory=set)
    rates: list[str] = field(default_factory=list)


class TemplateCatalog(Protocol):
    """Knows which templates exist and which variables they read."""

    def check(self, channel: str, template: str, locales: tuple[str, ...]) -> TemplateReport: ...


#: Facts a template reads to offer the matched product.
OFFER_FACTS = frozenset({"matched_product", "matched_apr", "matched_payment"})


def offer_warnings(journey: Journey, catalog: TemplateCatalog) -> list[str]:
    """A marketing journey whose messages offer the matched product should keep out the leads the
    matcher found no product for: by declaring ``product:`` or testing ``product_fit``."""
    if journey.purpose != "marketing" or journey.product is not None or "product_fit" in repr(journey.entry.when):
        return []
    if any(isinstance(s, BranchStep) and s.field == "product_fit" for s in journey.steps.values()):
        return []
    for step in journey.sends():
        used = catalog.check(step.channel, step.template, journey.locales).used & OFFER_FACTS
        if used:
            return [
                f"{journey.source}:{step.line}: step '{step.id}': template {step.template!r} offers the matched "
                f"product ({', '.join(sorted(used))}) but the journey lets in leads no product fits: declare "
                "`product: <loan type>` or branch on product_fit"
            ]
    return []


def check_templates(journey: Journey, catalog: TemplateCatalog) -> list[str]:
    """Problems with a journey's templates: missing locales, unknown or possibly-missing fields,
    and (in marketing) a rate stated without the APR."""
    problems: list[str] = []
    guaranteed = {f for f, spec in FIELDS.items() if spec.always} | set(journey.entry.requires)
    for step in journey.sends():
        where = f"{journey.source}:{step.line}: step '{step.id}'"
        report = catalog.check(step.channel, step.template, journey.locales)
        problems += [f"{where}: {p}" for p in report.problems]
        for name in sorted(report.used - SYSTEM_VARS - set(journey.vars)):
            if name not in FIELDS:
                problems.append(f"{where}: template {step.template!r} uses unknown field {name!r}")
            elif name not in guaranteed and name not in report.guarded:
                problems.append(
                    f"{where}: template {step.template!r} uses {name!r}, which a lead may not have; "
                    f"add it to entry.requires, or use it inside {{% if {name} is defined %}}"
                )
        if journey.purpose == "marketing" and report.rates and APR_FACT not in report.used:
            problems.append(
                f"{where}: template {step.template!r} states a rate ({report.rates[0]}) but not the APR: "
                f"show {{{{ {APR_FACT} }}}} (the matched product's APR by IRR, every fee included) "
                "and no rate figure of its own"
            )
        elif journey.purpose == "marketing":
            problems += [
                f"{where}: template {step.template!r} writes a rate figure ({r}); rates change and must be the "
                f"matched product's APR: show {{{{ {APR_FACT} }}}}"
                for r in report.rates
                if "%" in r
            ]
    return problems
