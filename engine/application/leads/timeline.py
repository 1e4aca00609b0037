"""A lead's timeline: every recorded fact and decision about one lead, with its reason."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from engine.application.engine import Engine
from engine.domain.delivery.delivery import Delivery, told
from engine.domain.journeys.enrolment import ELAPSED, Enrolment
from engine.domain.journeys.lead_journeys import EntryRefusals, Refusal, refusals_in
from engine.domain.leads.engagement import engagement_score
from engine.domain.leads.lead import Lead
from engine.domain.leads.lead import told as told_lead
from engine.domain.referrals.referral import Referral, Referrer, referral_id, referrer_id
from engine.domain.shared.durations import zone_text
from engine.domain.shared.folding import rebuilt


class _Refused:
    """One journey of a refusal event, as a timeline line: the event's moment and name."""

    def __init__(self, e: Any, refusal: Refusal) -> None:
        self.refusal, self.at = refusal, e.at
        # Told as they were when the lead's journey history kept them (README: leads show).
        self.event = "LeadJourneys.EntriesRefused" if isinstance(e, EntryRefusals.Recorded) else type(e).__qualname__


def _name(e: Any) -> str:
    return e.event if isinstance(e, _Refused) else type(e).__qualname__


def _when(e: Any) -> datetime:
    moment: datetime = getattr(e, "at", None) or getattr(e, "captured_at", None) or e.timestamp
    return moment


def _describe_touch(source: dict[str, Any]) -> tuple[str, str]:
    what = ", ".join(f"{k} {v}" for k, v in source.items() if k not in ("channel", "utm") and v)
    utm = ", ".join(f"utm_{k} {v}" for k, v in (source.get("utm") or {}).items() if v)
    detail = "; ".join(x for x in (what, utm) if x)
    return f"came again through {source.get('channel')}{f' ({detail})' if detail else ''}", "a new touch (attribution)"


def describe(e: Any, zone: tzinfo = UTC) -> tuple[str, str]:
    """(what happened, why) for one event, in a marketer's words."""
    if type(e).__qualname__.startswith("Delivery."):
        return _describe_delivery(e, zone)
    match e:
        case Lead.Captured():
            partner = f" via {e.source['partner']}" if e.source.get("partner") else ""
            issues = f"; flagged: {'; '.join(e.contact_issues)}" if e.contact_issues else ""
            return f"captured from {e.source['channel']}{partner}", f"source record{issues}"
        case Lead.ProfileUpdated():
            fields = ", ".join(f"{k}" for section in e.changes.values() if isinstance(section, dict) for k in section)
            return f"profile updated ({fields or 'contact issues'})", f"re-captured from {e.source.get('channel')}"
        case Lead.Touched():
            return _describe_touch(e.source)
        case Lead.Erased():
            return "erased on request: personal data unreadable for good", f"{e.by}: {e.reason}"
        case Lead.DataConflicted():
            fields = ", ".join(f"{k.split('.', 1)[1]} {v!r}" for k, v in e.conflicts.items())
            where = f"{e.source.get('channel')}:{e.source.get('external_id') or '(no id)'}"
            return f"conflicting data from {where}, not applied ({fields})", "kept the lead's own source; review it"
        case Lead.Segmented():
            segs = ", ".join(e.segments) or "none"
            return (
                f"segmented: audience {e.audience}, tier {e.tier}, segments {segs}",
                f"rules {e.rules_version}: " + "; ".join(f"{k} by {v}" for k, v in e.reasons.items()),
            )
        case Lead.ProductsMatched():
            if e.product:
                return (
                    f"matched {e.name}: APR {float(e.apr):.2%}"
                    + (f", {e.monthly_payment}/month" if e.monthly_payment else ""),
                    f"cheapest eligible product (catalogue {e.catalogue_version})"
                    + (f"; not: {'; '.join(f'{k} ({v})' for k, v in e.reasons.items())}" if e.reasons else ""),
                )
            return "no product fits", "; ".join(f"{k}: {v}" for k, v in e.reasons.items())
        case Lead.ConsentGranted():
            return f"{e.channel} {e.purpose} consent granted", f"{e.source}: {e.evidence}"
        case Lead.ConsentRequested():
            return f"{e.channel} {e.purpose} consent requested (awaiting confirmation)", f"{e.source}: {e.evidence}"
        case Lead.ConsentWithdrawn():
            return f"{e.channel} {e.purpose} consent withdrawn", f"{e.source}: {e.evidence}"
        case Lead.StageChanged():
            return f"stage {e.from_stage} → {e.to_stage}", e.reason
        case Lead.ApplicationSubmitted():
            return f"application {e.application_id} submitted ({e.loan_type} {e.amount or ''})".strip(), "lender system"
        case Lead.ApplicationApproved():
            return f"application {e.application_id} approved {e.amount or ''}".strip(), "lender system"
        case Lead.ApplicationDeclined():
            return f"application {e.application_id} declined", e.reason
        case Lead.LoanFunded():
            return f"loan {e.application_id} funded {e.amount or ''}".strip(), "lender system"
        case Lead.Scored():
            score = f"score {e.score}, " if e.score is not None else ""
            reasons = "; ".join(f"{r['code']} {r['characteristic']} = {r['value']}" for r in e.reasons)
            return (
                f"{e.kind} model v{e.model_version}: {score}band {e.band} (p={float(e.probability):.1%})",
                f"reasons: {reasons}"
                if reasons
                else "model inputs: " + ", ".join(f"{k}={v}" for k, v in e.inputs.items()),
            )
        case Lead.LinkClicked():
            return (
                f"clicked link {e.link} of {e.template}",
                f"step {e.step} of {e.journey_id}: a person's click, not a scanner's",
            )
        case Lead.RepaymentMissed():
            return f"repayment missed on {e.application_id} ({e.days_past_due} days past due)", "lender system"
        case Enrolment.Started():
            return f"entered journey {e.journey_id} v{e.journey_version}", e.reason
        case Enrolment.StepReached():
            return f"reached step {e.step}", ""
        case Enrolment.WaitStarted():
            what = "waiting for an event" if e.kind == "event" else "waiting"
            return f"{what} at {e.step} until {zone_text(e.due_at, zone)}", f"{e.kind} wait"
        case Enrolment.WaitEnded():
            return f"wait at {e.step} ended", e.outcome
        case Enrolment.MessageSkipped():
            return f"message at {e.step} not sent", e.reason
        case Enrolment.SplitAssigned():
            return f"split {e.step} → arm '{e.arm}'", f"bucket {e.bucket} of 10000 (deterministic per lead)"
        case Enrolment.TaskCreated():
            return f"{e.kind} task for {e.queue} at step {e.step}", e.note
        case Enrolment.LeadUpdateRequested():
            changes = ", ".join(
                x for x in (f"stage {e.stage}" if e.stage else "", f"tag {e.tag}" if e.tag else "") if x
            )
            return f"lead update requested: {changes}", f"step {e.step}"
        case Enrolment.EventObserved():
            return f"noted {e.event} {e.key}".strip(), "for a later wait_for step"
        case Enrolment.GoalReached():
            return f"goal reached: {e.stage}", "within the conversion window" if e.within_window else "after the window"
        case Enrolment.Migrated():
            return f"moved from v{e.from_version} to v{e.to_version}", f"step {e.from_step} → {e.to_step}"
        case Refusal():
            return f"not entered into {e.journey_id} v{e.version}", e.reason
        case Lead.Tagged():
            return f"tagged {e.tag}", e.reason
        case Enrolment.BranchTaken():
            values = ", ".join(f"{k}={v}" for k, v in e.values.items())
            return f"branch {e.step} → {e.to}", f"case '{e.case}' because {values}"
        case Enrolment.MessageRequested():
            return f"{e.channel} message '{e.template}' requested", e.reason
        case Enrolment.Exited():
            return f"left journey: {e.reason}", e.detail
    return type(e).__qualname__, ""


def _describe_delivery(e: Any, zone: tzinfo = UTC) -> tuple[str, str]:
    match e:
        case Delivery.Sent():
            locale = f" ({e.locale})" if e.locale else ""
            recovered = "" if e.locale else "; found sent after a restart, not sent again"
            return f"{e.channel} sent to {e.recipient}{locale}", f"step {e.step} of {e.journey_id}{recovered}"
        case Delivery.Failed():
            kind = "failed" if e.permanent else "failed, will retry"
            return f"{e.channel} at {e.step} of {e.journey_id} {kind}", e.reason
        case Delivery.Deferred():
            until = zone_text(e.until, zone)
            return f"{e.channel} at {e.step} of {e.journey_id} held until {until}", e.reason
        case Delivery.ReceiptRecorded():
            return f"delivery receipt: {e.status}", f"provider error {e.error_code}" if e.error_code else "provider"
        case Delivery.Skipped():
            return f"{e.channel} at {e.step} of {e.journey_id} not sent", e.reason
        case Delivery.HeldForReview():
            return f"{e.channel} at {e.step} of {e.journey_id} held for review", e.reason
        case Delivery.Released():
            what = "sent again" if e.resend else "confirmed it had left: not resent"
            return f"{e.channel} at {e.step} of {e.journey_id} released by an operator: {what}", (
                f"{e.by}: {e.note}" if e.note else e.by
            )
        case Delivery.AddressBounced():
            return f"{e.channel} address {e.recipient} refused for good", e.reason
        case Delivery.Clicked():
            who = "clicked" if e.kind == "human" else "followed by a scanner (not counted)"
            return f"link {e.link} of {e.template} {who}", f"{e.reason}; step {e.step} of {e.journey_id}"
        case Delivery.Opened():
            return "open pixel fetched (unreliable)", f"step {e.step} of {e.journey_id}"
    return type(e).__qualname__, ""


def _describe_referral(e: Any, lead_id: UUID) -> tuple[str, str]:
    """A referral's decision, told from this lead's side (the friend's or the referrer's)."""
    side = "the referral of this lead" if e.originator_id == referral_id(lead_id) else "a referral by this lead"
    match e:
        case Referral.Recorded():
            return f"{side} recorded (code {e.code})", e.rule
        case Referral.RefereeApplied():
            return f"{side}: the friend applied", f"application {e.application_id}"
        case Referral.Qualified():
            return f"{side} qualified for programme {e.programme}", f"loan funded, amount {e.amount or 'not recorded'}"
        case Referral.NotQualified():
            return f"{side}: no reward", e.reason
        case Referral.Held():
            return f"{side}: reward held for review", "; ".join(e.reasons)
        case Referral.Approved():
            return f"{side}: reward approved by {e.by}", e.note or "reviewed"
        case Referral.Rejected():
            return f"{side}: reward rejected by {e.by}", e.note
        case Referral.Capped():
            return f"{side}: reward not paid (cap)", e.reason
        case Referral.Paid():
            return f"{side}: rewards paid", "to both sides"
        case Referral.ClawedBack():
            return f"{side}: reward clawed back", e.reason
    return type(e).__qualname__, ""


def _referral_events(engine: Engine, lead_id: UUID) -> list[Any]:
    """The decisions on the referral that brought this lead and on those it made."""
    ids = [referral_id(lead_id)]
    try:
        referrer: Referrer = engine.referrals.repository.get(referrer_id(lead_id))
        ids += [referral_id(referee) for referee, _ in referrer.referees]
    except AggregateNotFoundError:
        pass
    out: list[Any] = []
    for rid in dict.fromkeys(ids):
        out += list(engine.referrals.events.get(rid))
    return out


def _ended_as_planned(waiting: Enrolment.WaitStarted | None, e: Any) -> Enrolment.WaitEnded | None:
    """The end of the wait ``waiting`` when ``e`` is the event of another step: the log records
    a wait that ended as planned by the next step's event alone (``Enrolment._arrive``); the
    timeline tells it as its own line, as it told the ``WaitEnded`` stored before."""
    step = getattr(e, "step", None)
    if waiting is None or not step or step == waiting.step or isinstance(e, Enrolment.WaitEnded):
        return None
    ended = {"step": waiting.step, "outcome": ELAPSED, "at": e.at}
    return rebuilt(Enrolment.WaitEnded, ended, e.originator_id, e.originator_version, e.timestamp)  # type: ignore[no-any-return]


def lead_timeline(engine: Engine, lead_id: UUID) -> dict[str, Any]:
    """The stable JSON document behind ``huoke leads show`` (see README)."""
    lead = engine.leads.get_lead(lead_id)
    events: list[tuple[str, Any]] = [("lead", e) for s in engine.leads.events.get(lead_id) for e in told_lead(s)]
    for e in engine.journeys.history_events(lead_id, lead.version):  # each refused journey a line of its own
        events += [("journey", _Refused(e, refusal)) for refusal in refusals_in(e)]
    enrolments = engine.index.enrolments_of(lead_id)
    for row in enrolments:
        waiting: Enrolment.WaitStarted | None = None
        for e in engine.journeys.enrolment_events(UUID(row["enrolment_id"])):
            ended = _ended_as_planned(waiting, e)
            if ended is not None:
                events.append(("journey", ended))
            if isinstance(e, Enrolment.WaitStarted | Enrolment.WaitEnded) or ended is not None:
                waiting = e if isinstance(e, Enrolment.WaitStarted) else None
            events.append(("journey", e))
            if isinstance(e, Enrolment.MessageRequested):
                events += [
                    ("delivery", d)
                    for stored in engine.deliveries.events.get(e.send_id)
                    for d in told(stored)  # a request tells a first decision recorded with it
                    if not isinstance(d, Delivery.Requested | Delivery.Dispatching)  # the marker is bookkeeping
                ]
    events += [("referral", e) for e in _referral_events(engine, lead_id)]
    zone = engine.deliveries.default_tz  # the lender's: every moment in a reason is told in it
    events.sort(key=lambda pair: _when(pair[1]))
    timeline = []
    for origin, e in events:
        shown = e.refusal if isinstance(e, _Refused) else e
        what, why = _describe_referral(e, lead_id) if origin == "referral" else describe(shown, zone)
        timeline.append(
            {
                "at": _when(e).astimezone(UTC).isoformat(),
                "source": origin,
                "event": _name(e),
                "what": what,
                "why": why,
            }
        )
    return {
        "lead": {
            "id": str(lead.id),
            "name": lead.contact.get("name"),
            "stage": lead.stage.value,
            "audience": lead.audience.value,
            "tier": lead.tier.value,
            "segments": list(lead.segments),
            "source": lead.source,
            "language": lead.contact.get("language"),
            "email": lead.contact.get("email"),
            "phone": lead.contact.get("phone"),
            "consents": dict(sorted(lead.consents.items())),
            "referral": engine.deliveries.referral_vars(lead.id),
            "contact_issues": lead.contact_issues,
            "scores": {
                kind: {
                    "model_version": s.model_version,
                    "probability": float(s.probability),
                    "score": s.score,
                    "band": s.band,
                    "reasons": s.reasons,
                    "at": s.at.astimezone(UTC).isoformat(),
                }
                for kind, s in sorted(lead.scores.items())
            },
            "offer": lead.offer.as_dict() if lead.offer else {},
            "affordability": engine.leads.affordability(lead),
            "engagement_score": engagement_score(lead.clicks, engine.clock.now()),
            "erased": lead.erased,
        },
        "enrolments": [
            {"journey_id": r["journey_id"], "version": r["journey_version"], "status": r["status"]} for r in enrolments
        ],
        "timeline": timeline,
    }
