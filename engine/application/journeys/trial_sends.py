"""Test sends: a journey step's real message, rendered for a real lead, sent through the real
channel — but only to an address or phone on the lender's seed list (``HUOKE_TEST_RECIPIENTS``),
marked as a test (subject and text prefixed, an ``X-Huoke-Test`` header), audited, and never on
the lead's timeline, in a report or against a cap: no Delivery is recorded for it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from engine.application.engine import Engine
from engine.application.ports import OutgoingMessage, SendResult
from engine.application.sending import CollectedResults
from engine.domain.journeys.journey import Journey, SendStep
from engine.domain.shared.errors import HuokeError

TEST_MARK = "[TEST] "
_TEST_SENDS = UUID("6c2a1e0f-9a55-4d0e-9d5c-6e9f3c7b1a20")


class TrialSendError(HuokeError):
    """Raised when a test send is not allowed or not possible (not a seed address, not a send step)."""


@dataclass(frozen=True)
class TrialSent:
    channel: str
    to: str
    template: str
    subject: str | None
    result: SendResult


def normalised(recipient: str) -> str:
    """An address or phone as the seed list is compared: no case, spaces, dashes or brackets."""
    return "".join(ch for ch in recipient.strip().lower() if ch not in " -()")


def send_trial(
    engine: Engine, journey: Journey, step_id: str, lead_id: UUID, to: str, seeds: set[str], now: datetime
) -> TrialSent:
    """Render step ``step_id`` of ``journey`` for the lead and send it to ``to`` (a seed)."""
    if normalised(to) not in {normalised(s) for s in seeds}:
        raise TrialSendError(
            f"{to} is not on the test recipients' list (HUOKE_TEST_RECIPIENTS): test sends go to your own inboxes "
            "and phones only"
        )
    step = journey.steps.get(step_id)
    if not isinstance(step, SendStep) or step.channel not in ("email", "sms"):
        sends = ", ".join(s.id for s in journey.sends() if s.channel in ("email", "sms")) or "none"
        raise TrialSendError(
            f"step {step_id!r} of {journey.id} does not send an e-mail or SMS (those that do: {sends})"
        )
    if (step.channel == "email") != ("@" in to):
        want = "an e-mail address" if step.channel == "email" else "a phone number"
        raise TrialSendError(f"step {step_id!r} sends {step.channel}: --to must be {want}, not {to}")
    channel = engine.deliveries.channels.get(step.channel)
    if channel is None:
        raise TrialSendError(f"no {step.channel} channel is configured")
    lead = engine.leads.get_lead(lead_id)
    body = engine.deliveries.render_for(lead, step.channel, step.template, dict(journey.vars), now, inert=True)
    body = replace(
        body,
        subject=TEST_MARK + (body.subject or "") if body.subject is not None else None,
        text=(TEST_MARK + body.text) if step.channel == "sms" else body.text,
    )
    send_id = uuid5(_TEST_SENDS, f"{journey.id}|{step_id}|{lead_id}|{to}|{now.isoformat()}")
    message = OutgoingMessage(
        send_id=send_id,
        channel=step.channel,
        to=normalised(to) if step.channel == "sms" else to.strip(),  # a phone as the provider wants it
        body=body,
        unsubscribe_url=engine.deliveries.inert_url("unsubscribe"),  # a seed's click never opts the lead out
        headers={"X-Huoke-Test": f"journey {journey.id} step {step_id}"},
    )
    progress = CollectedResults()
    channel.send_batch([message], progress)
    [result] = progress.results or [SendResult(send_id, False, reason="the channel gave no answer")]
    return TrialSent(step.channel, message.to, step.template, body.subject, result)


def audit_target(journey: Journey, step_id: str, lead_id: UUID, to: str) -> str:
    """What the audit trail keeps of a test send: never the address itself."""
    digest = hashlib.sha256(normalised(to).encode()).hexdigest()[:12]
    return f"test send {journey.id}/{step_id} lead {lead_id} to #{digest}"


def as_dict(sent: TrialSent) -> dict[str, Any]:
    return {
        "channel": sent.channel,
        "to": sent.to,
        "template": sent.template,
        "subject": sent.subject,
        "sent": sent.result.ok,
        "reason": sent.result.reason,
    }
