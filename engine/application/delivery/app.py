"""Deliveries: turn message requests into sends, effectively once.

Two steps, each exactly-once against a notification log:
1. ``request_messages`` records a Delivery (requested) for each Enrolment.MessageRequested,
   tracking the Journeys log position in the same transaction.
2. ``dispatch`` follows the Deliveries log's own Requested events in batches: checks consent
   and contact at send time, renders, reconciles sends already made (by send id), sends, and
   records sent / failed / skipped with the position reached, in one transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.utils import get_topic

from engine.application.delivery.links import LinkKeys, make_token
from engine.application.journeys.app import Journeys
from engine.application.leads.app import Leads
from engine.application.partitions import ALL, Partitions, Stop, never
from engine.application.ports import (
    TRACK_CONTEXT,
    Channel,
    Clock,
    LinkTracker,
    OutgoingMessage,
    PiiVault,
    RenderedMessage,
    Renderer,
    RenderError,
    SendResult,
)
from engine.application.projecting import drain, next_owned_page
from engine.domain.delivery.contact_history import ContactHistory, contact_history_id
from engine.domain.delivery.contact_policy import (
    DEFAULT_POLICY,
    ContactPolicy,
    cap_hold,
    spacing_hold,
    span_text,
    window_hold,
)
from engine.domain.delivery.delivery import PII_FIELDS, Delivery
from engine.domain.journeys import interpreter
from engine.domain.journeys.enrolment import Enrolment
from engine.domain.journeys.interpreter import Exit
from engine.domain.journeys.journey import Journey, SendStep
from engine.domain.leads.facts import lead_facts
from engine.domain.leads.lead import Lead
from engine.domain.referrals.codes import referral_code
from engine.domain.shared.durations import backoff, zone_text
from engine.domain.shared.errors import DeliveryStateError
from engine.domain.shared.values import ConsentChannel, ConsentPurpose, consent_key
from engine.eventstore import Mapper, ProcessRecorder, Tracking
from engine.eventstore.saving import (
    forget_cache,
    fresh_get,
    latest_versions,
    retry_conflicts,
    save_batch,
    sealing_mapper,
)

REQUESTED_TOPICS = [get_topic(Enrolment.MessageRequested)]
DELIVERY_TOPICS = [get_topic(Delivery.Requested)]


@dataclass(frozen=True)
class Sender:
    """Who marketing comes from, and how opt-out links are made."""

    name: str
    email: str
    postal_address: str
    unsubscribe_url: str
    #: Signs the unsubscribe and confirmation links (and still accepts links of older keys).
    link_keys: LinkKeys
    default_locale: str


@dataclass(frozen=True)
class Retries:
    """How long a message keeps being retried, how a down channel is probed, and what happens to
    a message that may have left before a crash (``resend`` with the same Message-ID, which
    receivers de-duplicate, or ``hold``: never risk a duplicate, record it held for review)."""

    retry_for: timedelta = timedelta(hours=24)
    probe_every: timedelta = timedelta(minutes=2)
    in_doubt: str = "resend"
    #: A message held up this long by channel trouble follows its step's ``stale`` policy.
    stale_after: timedelta = timedelta(hours=24)


def retry_delay(send_id: UUID, attempt: int) -> timedelta:
    """A message's wait before its next try: 5 min, 10, 20… capped at 6 h, ±20% (deterministic per send)."""
    return backoff(attempt, timedelta(minutes=5), timedelta(hours=6), f"{send_id}{attempt}")


#: Where a channel's messages go, in the lead's contact details.
_ADDRESS = {"email": "email", "sms": "phone"}


def country_of(contact: dict[str, Any]) -> str | None:
    """The lead's country for contact rules: as captured, else the phone number's (E.164)."""
    if contact.get("country"):
        return str(contact["country"]).upper()
    phone = contact.get("phone")
    if not phone:
        return None
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(str(phone), None))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "ZZ" else None


def _zone(name: str | None) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


@dataclass
class DispatchReport:
    """Counts of what one dispatch pass did."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0
    reconciled: int = 0
    deferred: int = 0
    held: int = 0  # in doubt, held for an operator (HUOKE_IN_DOUBT=hold)

    def add(self, other: DispatchReport) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def moved(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))


#: How long after the earlier message of its enrolment is next due a later one is tried again.
ORDER_GAP = timedelta(minutes=2)
#: The schedule view's look-up of each send's earlier unsettled messages.
OpenBefore = Callable[[Sequence[tuple[UUID, UUID, datetime]]], dict[UUID, list[tuple[UUID, datetime | None]]]]


@dataclass
class _Pass:
    """What one dispatch pass keeps while it decides: counts, contact histories, and messages
    already planned for a lead in this pass (for caps)."""

    report: DispatchReport
    histories: dict[UUID, ContactHistory] = field(default_factory=dict)
    planned: dict[tuple[UUID, str], int] = field(default_factory=dict)
    lead_versions: dict[UUID, int] = field(default_factory=dict)  # per send: the lead's version decided on
    marketing: dict[UUID, str] = field(default_factory=dict)  # lead -> journey of a marketing message this pass
    going: set[UUID] = field(default_factory=set)  # sends handed to a channel in this pass


class Deliveries(Application[UUID]):
    """One Delivery aggregate per send id; its log is the outbox of record."""

    def __init__(
        self,
        env: dict[str, str],
        clock: Clock,
        renderer: Renderer,
        channels: Mapping[str, Channel],
        sender: Sender,
        definition: Callable[[str, int], Journey] | None = None,
        policy: ContactPolicy = DEFAULT_POLICY,
        default_tz: str = "Asia/Shanghai",
        retries: Retries = Retries(),
        vault: PiiVault | None = None,
        referral_key: bytes = b"",
        tracker: LinkTracker | None = None,
    ) -> None:
        self.vault = vault  # before the application builds its mapper
        super().__init__(env)
        #: Rewrites messages' links to tracked links (None: links go out as written).
        self.tracker = tracker
        self.referral_key = referral_key
        self.retries = retries
        #: Channels found unreachable: when they went down and when to try one message again.
        self.down: dict[str, tuple[datetime, datetime, str]] = {}
        self.clock = clock
        self.renderer = renderer
        self.channels = dict(channels)
        self.sender = sender
        self.definition = definition
        self.policy = policy
        self.default_tz = ZoneInfo(default_tz)
        #: Earlier unsettled messages of each send's enrolment (the delivery schedule view; None:
        #: only the messages of one pass are kept in order).
        self.open_before: OpenBefore | None = None

    recorder: ProcessRecorder

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    def construct_mapper(self) -> Mapper[UUID]:
        """Recipients are sealed with their lead's own key when a vault is configured."""
        return sealing_mapper(super().construct_mapper(), self.vault, PII_FIELDS, owner="lead_id")

    def request_messages(
        self, journeys: Journeys, parts: Partitions = ALL, batch_size: int = 1000, stop: Stop = never
    ) -> int:
        """Record a requested Delivery for every new Enrolment.MessageRequested (of owned partitions)."""

        def one_page() -> int | None:
            page = next_owned_page(self.recorder, journeys, REQUESTED_TOPICS, parts, batch_size)
            if page is None:
                return None
            requested: list[Delivery] = []
            for e in page.events:
                enrolment = journeys.get_enrolment(e.originator_id)
                if enrolment is None:  # cannot happen: the request was recorded on it
                    raise LookupError(f"enrolment {e.originator_id} vanished")
                requested.append(
                    Delivery(
                        send_id=e.send_id,
                        lead_id=enrolment.lead_id,
                        enrolment_id=e.originator_id,
                        journey_id=enrolment.journey_id,
                        journey_version=enrolment.journey_version,
                        step=e.step,
                        channel=e.channel,
                        template=e.template,
                        reason=e.reason,
                        at=e.at,
                    )
                )
            save_batch(self, requested, page.trackings)
            return len(page.events)

        return drain(one_page, stop)

    def dispatch(
        self,
        leads: Leads,
        due: Sequence[UUID] = (),
        parts: Partitions = ALL,
        batch_size: int = 200,
        stop: Stop = never,
    ) -> DispatchReport:
        """Send new requests and the deferred deliveries now ``due``; return what happened.

        Every delivery ends a pass sent, skipped, failed, or deferred to a time (quiet hours,
        a frequency cap, a retry after a transient failure): none blocks the ones after it.
        """
        report = DispatchReport()
        for i in range(0, len(due), batch_size):
            held: list[Delivery] = [self.repository.get(d) for d in due[i : i + batch_size]]
            self._process([d for d in held if parts.owns(d.lead_id)], leads, report, ())
        while True:
            page = next_owned_page(
                self.recorder, self, DELIVERY_TOPICS, parts, batch_size, lead_of=lambda e: UUID(str(e.lead_id))
            )
            if page is None:
                return report
            fresh: list[Delivery] = [self.repository.get(e.originator_id) for e in page.events]
            self._process(fresh, leads, report, page.trackings)
            if stop():
                return report

    def _process(
        self, deliveries: list[Delivery], leads: Leads, report: DispatchReport, trackings: Sequence[Tracking]
    ) -> None:
        state = _Pass(report)
        now = self.clock.now()
        ready = [
            d
            for d in deliveries
            if not d.is_settled and not d.held_for_review and (d.deferred_until is None or d.deferred_until <= now)
        ]
        try:
            self._dispatch_batch(ready, leads, state)
            save_batch(self, [*deliveries, *state.histories.values()], trackings)
        except Exception:
            forget_cache(self)
            raise

    def _now_for(self, d: Delivery) -> datetime:
        """Never record an outcome before its request (a virtual clock may lag an import)."""
        return max(self.clock.now(), d.requested_at)

    def _dispatch_batch(self, batch: list[Delivery], leads: Leads, state: _Pass) -> None:
        report = state.report
        outgoing: dict[str, list[tuple[Delivery, OutgoingMessage]]] = {}
        current = leads.current(d.lead_id for d in batch)  # as committed now, in any process
        in_order = sorted(batch, key=lambda d: (d.requested_at, str(d.id)))
        ahead = self._ahead(in_order)
        for d in sorted(in_order, key=self._priority, reverse=True):  # stable: each enrolment keeps its order
            now = self._now_for(d)
            channel = self.channels.get(d.channel)
            if channel is None:
                d.mark_failed(f"no {d.channel} channel is configured", permanent=True, at=now)
                report.failed += 1
                continue
            if d.in_doubt and self._reconciled(
                d, channel, current.get(d.lead_id) or leads.get_lead(d.lead_id), now, report
            ):
                continue
            lead = current.get(d.lead_id) or leads.get_lead(d.lead_id)
            state.lead_versions[d.id] = lead.version
            purpose = self._purpose(d)
            held = self.refusal(d, lead, purpose, now) or self._hold(d, lead, purpose, now, state)
            if held:
                if d.outcome is None and d.deferred_until is not None and d.deferred_until > now:
                    report.deferred += 1
                elif not d.is_settled:
                    d.mark_skipped(held, now)
                    report.skipped += 1
                continue
            if self._behind(d, ahead.get(d.id, []), now, state):
                continue
            stale = self._stale(d, now)
            if stale:
                d.mark_skipped(stale, now)
                report.skipped += 1
                continue
            try:
                message = self._compose(d, lead, now)
            except RenderError as e:
                d.mark_failed(f"template {d.template!r} could not render: {e}", permanent=True, at=now)
                report.failed += 1
                continue
            state.planned[(d.lead_id, d.channel)] = state.planned.get((d.lead_id, d.channel), 0) + 1
            state.going.add(d.id)
            outgoing.setdefault(d.channel, []).append((d, message))
        for channel_name, items in outgoing.items():
            self._send(channel_name, items, leads, state)

    def _reconciled(self, d: Delivery, channel: Channel, lead: Lead, now: datetime, report: DispatchReport) -> bool:
        """An in-doubt message (handed to the channel before a crash, no outcome recorded): True
        when it is settled or put aside here: found sent (reconciled, never resent), held for an
        operator (HUOKE_IN_DOUBT=hold), or deferred while the channel cannot say. False: resend."""
        try:
            ref = channel.already_sent(d.id)
        except ConnectionError as e:  # cannot tell whether it left: hold it, never guess
            d.defer(now + retry_delay(d.id, d.transient_failures), str(e), now, transient=True)
            report.deferred += 1
            return True
        if ref is not None:
            d.mark_sent(lead.contact.get(_ADDRESS.get(d.channel, "")) or "", "", "", "", ref, now)
            report.reconciled += 1
            return True
        if self.retries.in_doubt == "hold":
            d.hold_for_review(
                "in doubt: handed to the channel before a crash and not confirmed; held for review, "
                "not resent (HUOKE_IN_DOUBT=hold): see huoke messages review",
                now,
            )
            report.held += 1
            return True
        return False

    def _ahead(self, batch: list[Delivery]) -> dict[UUID, list[tuple[UUID, datetime | None]]]:
        """Each send's earlier messages of its enrolment not yet settled: those in this batch
        (in request order) and, from the schedule view, those outside it."""
        out: dict[UUID, list[tuple[UUID, datetime | None]]] = {}
        if self.open_before is not None:
            out = self.open_before([(d.id, d.enrolment_id, d.requested_at) for d in batch])
        earlier: dict[UUID, list[Delivery]] = {}
        for d in batch:  # in request order
            siblings = earlier.setdefault(d.enrolment_id, [])
            known = {sid for sid, _ in out.get(d.id, [])}
            extra = [(x.id, x.deferred_until) for x in siblings if x.id not in known and not x.is_settled]
            if extra:
                out[d.id] = [*out.get(d.id, []), *extra]
            siblings.append(d)
        return out

    def _behind(self, d: Delivery, earlier: list[tuple[UUID, datetime | None]], now: datetime, state: _Pass) -> bool:
        """Defer ``d`` while an earlier message of its enrolment is unsettled and not going out in
        this same pass: a follow-up never overtakes its welcome after an outage, a retry or a
        crash. It is tried again shortly after the earlier one is next due."""
        waiting = [(sid, due) for sid, due in earlier if sid not in state.going]
        if not waiting:
            return False
        due = max((due for _, due in waiting if due is not None), default=now)
        d.defer(
            max(due, now) + ORDER_GAP,
            f"waits for the earlier message {waiting[0][0]} of its journey to go first",
            now,
        )
        state.report.deferred += 1
        return True

    def _send(
        self, channel_name: str, items: list[tuple[Delivery, OutgoingMessage]], leads: Leads, state: _Pass
    ) -> None:
        """Hand the messages to the channel one by one (each marked just before it leaves, its
        outcome recorded as soon as it is known), unless the channel is down: then one message
        probes it every ``probe_every`` and the others wait for the probe."""
        down = self.down.get(channel_name)
        now = self.clock.now()
        if down is not None:
            since, probe_at, why = down
            if now < probe_at:
                for d, _ in items:
                    self._pause(d, channel_name, since, probe_at, why, state)
                return
            probe, rest = items[:1], items[1:]
            self.channels[channel_name].send_batch([m for _, m in probe], _Progress(self, leads, state, probe))
            down = self.down.get(channel_name)
            if down is not None:  # still down: the others wait for the next probe
                for d, _ in rest:
                    self._pause(d, channel_name, *down, state)
                return
            items = rest
        if items:
            self.channels[channel_name].send_batch([m for _, m in items], _Progress(self, leads, state, items))

    def _gave_up(self, d: Delivery, now: datetime, since: datetime, why: str, state: _Pass) -> bool:
        """Fail the message for good once it has been in trouble (since ``since``, or its own
        first failure) for the whole retry window; the reason says so."""
        if now - (d.trouble_since or since) < self.retries.retry_for:
            return False
        d.mark_failed(f"gave up after {span_text(self.retries.retry_for)} of retries: {why}", True, now)
        state.report.failed += 1
        return True

    def _pause(self, d: Delivery, channel: str, since: datetime, until: datetime, why: str, state: _Pass) -> None:
        now = self._now_for(d)
        if self._gave_up(d, now, since, why, state):
            return
        d.defer(until, f"{channel} paused: {why} (down since {zone_text(since, self.default_tz)})", now, transient=True)
        state.report.deferred += 1

    def _marked(self, d: Delivery, leads: Leads, state: _Pass, links: tuple[str, ...] = ()) -> bool:
        """Commit the dispatch marker of one message (with where its tracked links lead), then
        look at its lead once more: an opt-out, goal or exit committed by any process before the
        marker stops it."""
        now = self._now_for(d)
        d.dispatching(now, list(links))
        save_batch(self, [d])
        if latest_versions(leads, [d.lead_id]).get(d.lead_id) == state.lead_versions[d.id]:
            return True
        refused = self.refusal(d, leads.fresh_lead(d.lead_id), self._purpose(d), now)
        if not refused:
            return True
        d.mark_skipped(refused, now)
        save_batch(self, [d])
        state.report.skipped += 1
        return False

    def _stale(self, d: Delivery, now: datetime) -> str:
        """Why a message held up by channel trouble (an outage, failed tries) is too late to send
        ('' when it is not, or its step says ``stale: send`` or ``reschedule``)."""
        late = now - d.requested_at
        if d.trouble_since is None or late <= self.retries.stale_after or self.definition is None:
            return ""
        step = self.definition(d.journey_id, d.journey_version).steps.get(d.step)
        if not isinstance(step, SendStep) or step.stale != "skip":
            return ""
        return (
            f"stale: {late.total_seconds() / 3600:.0f} h late, held up since "
            f"{zone_text(d.trouble_since, self.default_tz)} by {d.channel} trouble "
            f"(limit {span_text(self.retries.stale_after)}); the step says stale: skip"
        )

    def refusal(self, d: Delivery, lead: Lead, purpose: str, now: datetime) -> str:
        """Why this message may not go out now ('' when it may): consent and contact, then the
        journey's goal and exit criteria on the lead as it is now."""
        refused = self.policy_refusal(lead, d.channel, purpose)
        if refused or self.definition is None:
            return refused
        journey = self.definition(d.journey_id, d.journey_version)
        for decision in interpreter.goal_or_exit(journey, lead_facts(lead, now), None, None):
            if isinstance(decision, Exit):
                return f"lead left the journey before sending: {decision.reason} ({decision.detail})"
        return ""

    def _settle(self, d: Delivery, m: OutgoingMessage, result: SendResult, state: _Pass) -> None:
        now, report = self._now_for(d), state.report
        if not result.unreachable:
            self.down.pop(d.channel, None)  # it answered (even with a refusal): the channel is up again
        if result.ok:
            digest = hashlib.sha256((m.body.text + (m.body.html or "")).encode()).hexdigest()
            d.mark_sent(m.to, m.body.locale, m.body.variant, digest, result.provider_ref, now)
            self._history(d.lead_id, state.histories).record(d.channel, self._purpose(d), d.id, now, d.journey_id)
            report.sent += 1
        elif result.permanent:
            d.mark_failed(result.reason, True, now)
            report.failed += 1
            if result.bounced:
                d.flag_bounced(m.to, result.reason, now)
        elif self._gave_up(d, now, now, result.reason, state):
            return
        elif result.unreachable:
            since = self.down[d.channel][0] if d.channel in self.down else now
            probe_at = now + self.retries.probe_every
            self.down[d.channel] = (since, probe_at, result.reason)
            d.defer(probe_at, f"{d.channel} paused until it answers: {result.reason}", now, transient=True)
            report.deferred += 1
        else:
            d.defer(now + retry_delay(d.id, d.transient_failures), f"retry after: {result.reason}", now, transient=True)
            report.deferred += 1

    def _hold(
        self,
        d: Delivery,
        lead: Lead,
        purpose: str,
        now: datetime,
        state: _Pass,
    ) -> str:
        """Quiet hours, a frequency cap or another journey's marketing too recent (the domain's
        rules, ``contact_policy``): the message waits, or is skipped by its step's policy; ''
        when it may go now."""
        step = self._step(d)
        zone = _zone(lead.contact.get("timezone"))
        window = self.policy.window(country_of(lead.contact), d.channel, zone is not None)
        skip_window = step is not None and step.outside_window == "skip"
        hold = window_hold(window, zone or self.default_tz, now, skip_window) if d.channel != "webhook" else None
        if hold is None:
            cap = self.policy.cap(d.channel, purpose)
            sent = (
                self._history(d.lead_id, state.histories).sent_since(d.channel, purpose, now - cap.per) if cap else []
            )
            skip_capped = step is not None and step.when_capped == "skip"
            hold = cap_hold(cap, sent, state.planned.get((d.lead_id, d.channel), 0), now, skip_capped)
        if hold is None and purpose == "marketing":
            hold = spacing_hold(self.policy.spacing, self._last_marketing(d, now, state), now, self.default_tz,
                                step is not None and step.when_capped == "skip")  # fmt: skip
        if hold is None:
            return ""
        if hold.until is not None:
            d.defer(hold.until, hold.reason, now)
        return hold.reason

    def _last_marketing(self, d: Delivery, now: datetime, state: _Pass) -> tuple[str, datetime] | None:
        """Another journey's marketing to this lead within the spacing (one going out in this very
        pass counts as now); the first journey of a pass claims the lead for it."""
        spacing = self.policy.spacing
        if not spacing:
            return None
        other = state.marketing.get(d.lead_id)
        if other is not None and other != d.journey_id:
            return other, now
        last = self._history(d.lead_id, state.histories).last_from_another_journey(d.journey_id, "marketing",
                                                                                  now - spacing)  # fmt: skip
        if last is None:
            state.marketing.setdefault(d.lead_id, d.journey_id)
        return last

    def _priority(self, d: Delivery) -> int:
        return self.definition(d.journey_id, d.journey_version).priority if self.definition else 50

    def _step(self, d: Delivery) -> SendStep | None:
        if self.definition is None:
            return None
        step = self.definition(d.journey_id, d.journey_version).steps.get(d.step)
        return step if isinstance(step, SendStep) else None

    def _history(self, lead_id: UUID, histories: dict[UUID, ContactHistory]) -> ContactHistory:
        if lead_id not in histories:
            try:
                histories[lead_id] = self.repository.get(contact_history_id(lead_id))
            except AggregateNotFoundError:
                histories[lead_id] = ContactHistory(lead_id=lead_id)
        return histories[lead_id]

    def _journey_vars(self, d: Delivery) -> dict[str, str]:
        return self.definition(d.journey_id, d.journey_version).vars if self.definition else {}

    def _purpose(self, d: Delivery) -> str:
        return self.definition(d.journey_id, d.journey_version).purpose if self.definition else "marketing"

    @staticmethod
    def policy_refusal(lead: Lead, channel: str, purpose: str = "marketing") -> str:
        """Why this message may not go out now ('' when it may). Checked at send time.

        Marketing needs marketing consent on the channel; service messages (about the lead's own
        application) need none, but still a valid contact.
        """
        if lead.erased:
            return ERASED_REFUSAL
        if channel == "webhook":
            return ""  # goes to the lender's own systems, not to the lead
        consent_channel = ConsentChannel(channel)
        if purpose == "marketing" and not lead.has_consent(consent_channel, ConsentPurpose.MARKETING):
            state = lead.consents.get(consent_key(channel, ConsentPurpose.MARKETING))
            return "consent withdrawn" if state is False else f"no {channel} marketing consent"
        address = lead.contact.get("email" if channel == "email" else "phone")
        kind = "e-mail" if channel == "email" else "phone"
        if address and any(i.startswith(f"{kind} {address} bounced") for i in lead.contact_issues):
            return f"{kind} address bounced earlier"
        if not address:
            return f"no valid {'e-mail address' if channel == 'email' else 'phone number'}"
        return ""

    def unsubscribe_url(self, lead_id: UUID, channel: str) -> str:
        token = make_token(self.sender.link_keys, "unsubscribe", lead_id, channel, self.clock.now())
        return f"{self.sender.unsubscribe_url}/{lead_id}/{channel}/{token}"

    def inert_url(self, kind: str) -> str:
        """A link of a test send in place of ``kind`` (unsubscribe, confirm): huoke answers it
        with "this link is not valid" and changes nothing."""
        base = self.sender.unsubscribe_url if kind == "unsubscribe" else self.sender.unsubscribe_url.rsplit("/", 1)[0]
        return f"{base}/{'' if kind == 'unsubscribe' else 'confirm/'}test-send"

    def confirm_url(self, lead_id: UUID, channel: str) -> str:
        """The signed double opt-in link (served by huoke serve at /confirm/…)."""
        token = make_token(self.sender.link_keys, "confirm", lead_id, channel, self.clock.now())
        base = self.sender.unsubscribe_url.rsplit("/", 1)[0]
        return f"{base}/confirm/{lead_id}/{channel}/{token}"

    def referral_vars(self, lead_id: UUID) -> dict[str, str]:
        """The lead's own referral code and the link friends open (served by ``huoke serve``)."""
        code = referral_code(self.referral_key, lead_id)
        base = self.sender.unsubscribe_url.rsplit("/", 1)[0]
        return {"referral_code": code, "referral_link": f"{base}/r/{code}"}

    def render_for(
        self,
        lead: Lead,
        channel: str,
        template: str,
        journey_vars: dict[str, str],
        now: datetime,
        track: Callable[[str], str] | None = None,
        inert: bool = False,
    ) -> RenderedMessage:
        """Render one template for one lead, exactly as a send would (``track``: the send's
        tracked-link session, which every URL the template outputs passes through). ``inert``
        (a test send): the unsubscribe and confirmation links are shown but do nothing, so the
        seed inbox that clicks one never changes the real lead's consent."""
        facts = lead_facts(lead, now)
        context = {
            **journey_vars,
            **facts,
            "sender_name": self.sender.name,
            "postal_address": self.sender.postal_address,
            "unsubscribe_url": self.inert_url("unsubscribe") if inert else self.unsubscribe_url(lead.id, channel),
            "confirm_url": self.inert_url("confirm") if inert else self.confirm_url(lead.id, channel),
            **self.referral_vars(lead.id),
            **({TRACK_CONTEXT: track} if track is not None else {}),
        }
        return self.renderer.render(channel, template, facts["audience"], facts["language"], context)

    def _compose(self, d: Delivery, lead: Lead, now: datetime) -> OutgoingMessage:
        unsubscribe = self.unsubscribe_url(lead.id, d.channel)
        to = {"email": lead.contact.get("email"), "sms": lead.contact.get("phone")}.get(d.channel) or ""
        links: tuple[str, ...] = ()
        if self.tracker is not None and d.channel in ("email", "sms") and self._may_track(lead, d.channel):
            base = self.sender.unsubscribe_url.rsplit("/", 1)[0]
            own = (self.sender.unsubscribe_url, f"{base}/confirm/", f"{base}/r/")  # never tracked
            session = self.tracker.session(d.id, own)
            body = self.render_for(lead, d.channel, d.template, self._journey_vars(d), now, session.short)
            body, links = session.finish(body)
        else:
            body = self.render_for(lead, d.channel, d.template, self._journey_vars(d), now)
        return OutgoingMessage(
            send_id=d.id, channel=d.channel, to=to, body=body, unsubscribe_url=unsubscribe, links=links, at=now
        )

    @staticmethod
    def _may_track(lead: Lead, channel: str) -> bool:
        """Clicks are tracked unless the lead withdrew tracking on the channel (or was erased)."""
        return not lead.erased and lead.consents.get(consent_key(channel, ConsentPurpose.TRACKING)) is not False

    def record_receipt(self, send_id: UUID, status: str, error_code: str, at: datetime) -> bool:
        """Record a provider's delivery receipt; False for an unknown send id."""

        def record() -> bool:
            try:
                delivery: Delivery = fresh_get(self, send_id)  # a worker may have written it since
            except AggregateNotFoundError:
                return False
            delivery.record_receipt(status, error_code, at)
            save_batch(self, [delivery])
            return True

        return retry_conflicts(self, record)

    def review(self, send_id: UUID, leads: Leads, by: str, note: str, left: bool) -> Delivery:
        """An operator's word on a message held in doubt: it did not leave (``left`` False: send
        it again, same Message-ID, consent checked again) or it did (recorded sent, never resent)."""

        def attempt() -> Delivery:
            try:
                d: Delivery = fresh_get(self, send_id)
            except AggregateNotFoundError:
                raise DeliveryStateError(f"no message {send_id}") from None
            if not d.held_for_review:
                raise DeliveryStateError(f"message {send_id} is not held for review ({d.outcome or 'pending'})")
            now = self._now_for(d)
            d.release(by, note, not left, now)
            if left:
                lead = leads.fresh_lead(d.lead_id)
                recipient = lead.contact.get(_ADDRESS.get(d.channel, "")) or ""
                d.mark_sent(recipient, "", "", "", f"confirmed by {by}" + (f": {note}" if note else ""), now)
            save_batch(self, [d])
            return d

        return retry_conflicts(self, attempt)

    def cancel_unsent(self, send_ids: Iterable[UUID], reason: str) -> int:
        """Settle as skipped, with ``reason``, every one of these messages that has not gone
        (deferred, held for review, or not yet tried); the number cancelled."""
        ids = list(send_ids)

        def cancel() -> int:
            pending = [d for d in map(self.get_delivery, ids) if d is not None and not d.is_settled]
            now = self.clock.now()
            for d in pending:
                d.mark_skipped(reason, max(now, d.requested_at))
            save_batch(self, pending)
            return len(pending)

        return retry_conflicts(self, cancel)

    def get_delivery(self, send_id: UUID) -> Delivery | None:
        try:
            delivery: Delivery = self.repository.get(send_id)
        except AggregateNotFoundError:
            return None
        return delivery


#: Why nothing goes to (or about) an erased person.
ERASED_REFUSAL = "erased: the person asked to be erased"


class _Progress:
    """The dispatcher's side of a channel's sending: each message's marker is committed just
    before it leaves and its outcome as soon as it is known, so a crash leaves at most the
    messages on the wire in doubt (one per connection), never a whole batch."""

    def __init__(
        self, deliveries: Deliveries, leads: Leads, state: _Pass, items: list[tuple[Delivery, OutgoingMessage]]
    ) -> None:
        self.deliveries, self.leads, self.state = deliveries, leads, state
        self.items = {m.send_id: (d, m) for d, m in items}

    def sending(self, message: OutgoingMessage) -> bool:
        d, _ = self.items[message.send_id]
        return self.deliveries._marked(d, self.leads, self.state, message.links)

    def sent(self, result: SendResult) -> None:
        d, m = self.items[result.send_id]
        self.deliveries._settle(d, m, result, self.state)
        history = self.state.histories.get(d.lead_id)  # a sent message counts towards the caps
        save_batch(self.deliveries, [d, history] if history is not None else [d])
