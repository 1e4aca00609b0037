"""Publishing journey versions: immutable versions, migration plans, dry runs, status changes.

In-flight enrolments stay on their version unless a migration plan maps their current step to
a step of the new version (or to exit). A dry run shows, before anything changes, how many
enrolments would move where and which would receive a message they already had.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from engine.application.engine import Engine
from engine.application.journeys.app import Batch
from engine.domain.journeys import interpreter
from engine.domain.journeys.decisions import Context, Decision, Exit, Reach, Send, Wait
from engine.domain.journeys.journey import Journey, WaitForStep, WaitStep
from engine.domain.journeys.publication import PublishedJourney
from engine.domain.leads.facts import lead_facts
from engine.domain.shared.errors import MigrationPlanError
from engine.domain.shared.values import JSONDict
from engine.eventstore.saving import save_batch

STAY, EXIT = "stay", "exit"


@dataclass(frozen=True)
class MigrationPlan:
    """Old step → new step (or 'exit'); unmapped steps follow ``default`` ('stay' or 'exit')."""

    steps: dict[str, str]
    default: str = STAY
    from_versions: frozenset[int] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MigrationPlan:
        default = str(data.get("default", STAY))
        if default not in (STAY, EXIT):
            raise MigrationPlanError(f"migration plan 'default' must be stay or exit, got {default!r}")
        versions = data.get("from_versions")
        return cls(
            {str(k): str(v) for k, v in (data.get("steps") or {}).items()},
            default,
            frozenset(int(v) for v in versions) if versions else None,
        )

    def as_dict(self) -> JSONDict:
        return {
            "steps": self.steps,
            "default": self.default,
            "from_versions": sorted(self.from_versions) if self.from_versions else None,
        }

    def target(self, from_step: str | None) -> str:
        return self.steps.get(from_step or "", self.default)


@dataclass
class PublishReport:
    """What publishing did (or, in a dry run, would do)."""

    journey_id: str
    previous_version: int
    version: int
    changed: bool
    dry_run: bool
    moves: Counter[tuple[int, str, str]] = field(default_factory=Counter)
    resend: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": "huoke.publish/1",
            "journey_id": self.journey_id,
            "previous_version": self.previous_version,
            "version": self.version,
            "changed": self.changed,
            "dry_run": self.dry_run,
            "moves": [
                {"from_version": v, "from_step": f, "to": t, "enrolments": n}
                for (v, f, t), n in sorted(self.moves.items())
            ],
            "would_receive_again": len(self.resend),
            "leads_receiving_again": self.resend[:100],
        }


def publish_journey(
    engine: Engine,
    journey: Journey,
    raw: JSONDict,
    author: str,
    summary: str = "",
    plan: MigrationPlan | None = None,
    dry_run: bool = False,
    templates_hash: str = "",
) -> PublishReport:
    """Publish ``journey`` as a new version (if changed) and migrate enrolments by ``plan``."""
    journeys = engine.journeys
    pub = journeys.publication(journey.id) or PublishedJourney(journey_id=journey.id)
    previous = pub.latest
    changed = not pub.is_unchanged(journey.content_hash)
    version = previous + 1 if changed else previous
    if plan is not None:
        _check_plan(plan, journey)
    report = PublishReport(journey.id, previous, version, changed, dry_run)
    if not changed:
        return report
    engine.refresh_views()
    touched = _migrate(engine, journey, version, plan, report) if plan is not None else Batch()
    if dry_run:
        engine.journeys.forget_cached_state()
        return report
    pub.publish(
        journey.content_hash,
        raw,
        templates_hash,
        journey.source,
        author,
        journeys.clock.now(),
        summary,
        plan.as_dict() if plan else None,
    )
    touched.publications[journey.id] = pub
    journeys.record(touched)
    journeys.go_live([journey.id])
    return report


def _check_plan(plan: MigrationPlan, journey: Journey) -> None:
    unknown = sorted(t for t in plan.steps.values() if t not in (EXIT, STAY) and t not in journey.steps)
    if unknown:
        raise MigrationPlanError(f"migration plan maps to steps that {journey.id} does not have: {', '.join(unknown)}")


def _migrate(engine: Engine, journey: Journey, version: int, plan: MigrationPlan, report: PublishReport) -> Batch:
    """Apply the plan to every active enrolment on an older version; return what changed."""
    journeys, now = engine.journeys, engine.journeys.clock.now()
    touched = Batch()
    for row in engine.index.active_in(journey.id):
        old_version = int(row["journey_version"])
        if plan.from_versions is not None and old_version not in plan.from_versions:
            continue
        enrolment = journeys.get_enrolment(UUID(row["enrolment_id"]))
        if enrolment is None or not enrolment.is_active:
            continue
        from_step = enrolment.current_step or ""
        target = plan.target(from_step)
        report.moves[(old_version, from_step, target)] += 1
        if target == STAY:
            continue
        history = journeys.history_in(touched, enrolment.lead_id)
        touched.enrolments[enrolment.id] = enrolment
        if target == EXIT:
            decisions: list[Decision] = [
                Exit("migrated", f"v{old_version} step '{from_step}' mapped to exit in v{version}")
            ]
            journeys.advance(enrolment, decisions, now, history)
        else:
            facts = lead_facts(engine.leads.get_lead(enrolment.lead_id), now)
            due, kind = enrolment.due_at, enrolment.waiting_kind
            enrolment.migrate(version, target, now)
            decisions = _decisions_after_move(
                journeys.context(enrolment, journey, enrolment.lead_id, facts, now), journey, target, due, kind
            )
            if any(isinstance(d, Send) and d.template in enrolment.sent_templates for d in decisions):
                report.resend.append(str(enrolment.lead_id))
            journeys.advance(enrolment, decisions, now, history)
    return touched


def _decisions_after_move(ctx: Context, journey: Journey, target: str, due: Any, kind: str | None) -> list[Decision]:
    """Run from the new step; a wait mapped to a wait keeps the time it was already due."""
    step = journey.step(target)
    if due is not None and isinstance(step, (WaitStep, WaitForStep)):
        return [Reach(target), Wait(target, due, "event" if isinstance(step, WaitForStep) else (kind or "time"))]
    return interpreter.run_from(journey, target, ctx)


def change_status(engine: Engine, journey_id: str, action: str, by: str, reason: str = "") -> str:
    """Pause, resume or archive a journey; archiving ends its active enrolments."""
    from engine.domain.shared.errors import UnknownJourneyError

    journeys = engine.journeys
    pub = journeys.publication(journey_id)
    if pub is None:
        raise UnknownJourneyError(f"journey {journey_id!r} was never published")
    now = journeys.clock.now()
    if action == "pause":
        pub.pause(by, reason, now)
    elif action == "resume":
        pub.resume(by, now)
    elif action == "archive":
        pub.archive(by, reason, now)
    else:
        raise ValueError(f"unknown action {action!r}")
    save_batch(journeys, [pub])
    journeys.go_live([journey_id])
    if action == "archive":
        engine.refresh_views()
        ids = [UUID(r["enrolment_id"]) for r in engine.index.active_in(journey_id)]
        journeys.exit_all(ids, "journey_archived", reason or f"archived by {by}")
    return pub.status


def publish_new(
    engine: Engine, definitions: list[tuple[Journey, JSONDict]], templates_hash: str, author: str
) -> list[str]:
    """Publish v1 of every journey never published (an explicit step: the demo, a first
    ``journeys publish``); return the ids published."""
    published = []
    for journey, raw in definitions:
        if engine.journeys.publication(journey.id) is None:
            publish_journey(engine, journey, raw, author, "first version", templates_hash=templates_hash)
            published.append(journey.id)
    engine.journeys.go_live([j.id for j, _ in definitions])
    return published


def unpublished_changes(engine: Engine, definitions: list[tuple[Journey, JSONDict]]) -> list[str]:
    """Journeys whose file differs from the published version, or that were never published."""
    changed = []
    for journey, _ in definitions:
        pub = engine.journeys.publication(journey.id)
        if pub is None or not pub.is_unchanged(journey.content_hash):
            changed.append(journey.id)
    return changed
