"""Deliveries: requesting messages from the journeys' decisions and dispatching them (contact
rules, order, channels, retries, reconcile); composing and operator actions are mixed in from
their own modules."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from engine.application.delivery.base import (
    _ADDRESS,
    DELIVERY_TOPICS,
    ORDER_GAP,
    REQUESTED_TOPICS,
    DeliveriesBase,
    DispatchReport,
    _Pass,
    retry_delay,
)
from engine.application.delivery.composing import ComposingJobs
from engine.application.delivery.operator import OperatorJobs
from engine.application.delivery.rules import RuleJobs
from engine.application.journeys.app import Journeys
from engine.application.leads.app import Leads
from engine.application.partitions import ALL, Partitions, Stop, never
from engine.application.ports import (
    Channel,
    OutgoingMessage,
    RenderError,
    SendResult,
)
from engine.application.projecting import next_owned_page
from engine.domain.delivery.contact_policy import (
    span_text,
)
from engine.domain.delivery.delivery import Delivery, request_order
from engine.domain.leads.lead import Lead
from engine.domain.shared.durations import zone_text
from engine.eventstore import Claim, Tracking
from engine.eventstore.saving import (
    current_aggregates,
    forget_cache,
    latest_versions,
    save_batch,
)

#: Where the dispatcher keeps its positions in the Journeys log (per lead partition).
REQUESTS_TRACKED_AS = "Journeys.requests"


class Deliveries(RuleJobs, ComposingJobs, OperatorJobs, DeliveriesBase):
    """One Delivery aggregate per send id; its log is the outbox of record."""

    def dispatch(
        self,
        leads: Leads,
        journeys: Journeys,
        due: Sequence[UUID] = (),
        parts: Partitions = ALL,
        batch_size: int = 200,
        stop: Stop = never,
    ) -> DispatchReport:
        """Send the messages the journeys requested since the last pass (of owned partitions)
        and the deferred deliveries now ``due``; return what happened.

        Every delivery ends a pass sent, skipped, failed, or deferred to a time (quiet hours,
        a frequency cap, a retry after a transient failure): none blocks the ones after it. A
        request becomes its Delivery here, in the pass that decides on it: one that leaves at
        once is recorded by one event, request and dispatch marker together (committed before
        it leaves); the others with their decision. The page's position in the Journeys log is
        committed with the last of them, so a pass that dies is done again: what it stored is
        read back (in doubt, reconciled), what it did not is decided afresh.
        """
        report = DispatchReport()
        for i in range(0, len(due), batch_size):
            held: list[Delivery] = [self.repository.get(d) for d in due[i : i + batch_size]]
            self._process([d for d in held if parts.owns(d.lead_id)], leads, report, ())
        while True:
            page = next_owned_page(
                self.recorder,
                journeys,
                REQUESTED_TOPICS,
                parts,
                batch_size,
                lead_of=lambda e: e.lead_id or journeys.lead_of_enrolment(e.originator_id),
                tracked_as=REQUESTS_TRACKED_AS,
            )
            if page is None:
                return report
            report.requested += len(page.events)
            self._process(self.requested_deliveries(page.events, journeys), leads, report, page.trackings)
            if stop():
                return report

    def requested_deliveries(self, requests: Sequence[Any], journeys: Journeys) -> list[Delivery]:
        """The deliveries of a page of ``Enrolment.MessageRequested``: as stored by a pass that
        died before its end, else new (not stored yet)."""
        stored = current_aggregates(self, [e.send_id for e in requests])
        deliveries: list[Delivery] = []
        for e in requests:
            if e.send_id in stored:
                deliveries.append(stored[e.send_id])
                continue
            if e.lead_id is not None and e.journey_version:  # v2 names them: nothing to read
                lead_id, journey_id, journey_version = e.lead_id, e.journey_id, e.journey_version
            else:
                enrolment = journeys.get_enrolment(e.originator_id)
                if enrolment is None:  # cannot happen: the request was recorded on it
                    raise LookupError(f"enrolment {e.originator_id} vanished")
                lead_id, journey_id, journey_version = (
                    enrolment.lead_id,
                    enrolment.journey_id,
                    enrolment.journey_version,
                )
            deliveries.append(
                Delivery(
                    send_id=e.send_id,
                    lead_id=lead_id,
                    enrolment_id=e.originator_id,
                    journey_id=journey_id,
                    journey_version=journey_version,
                    step=e.step,
                    channel=e.channel,
                    template=e.template,
                    reason=e.reason,
                    at=e.at,
                    request_position=e.originator_version,
                )
            )
        return deliveries

    def hand_over_requests(self, journeys_name: str, partitions: int) -> int:
        """Take over from an older huoke, which turned each request into a Delivery in a pass
        of its own (partitioned by enrolment) and dispatched from those: ``db init`` runs it once.

        The requests are read again from where the earliest of its partitions got to, partitioned
        by lead (a request it had turned into a Delivery is found stored, never made twice), and
        every delivery it had requested and not yet dispatched goes to the schedule, due now. The
        number handed over."""
        parts = Partitions.every(partitions)
        old = [self.recorder.max_tracking_id(parts.tracking_name(journeys_name, p)) or 0 for p in range(partitions)]
        names = [parts.tracking_name(REQUESTS_TRACKED_AS, p) for p in range(partitions)]
        start_at = [Tracking(n, min(old)) for n in names if (self.recorder.max_tracking_id(n) or 0) < min(old)]
        if start_at:
            save_batch(self, [], start_at)
        handed, start = 0, 1
        now = self.clock.now()
        topic = DELIVERY_TOPICS[0]
        while page := self.recorder.select_notifications(start, 1000, topics=[topic]):
            found = current_aggregates(self, [UUID(str(n.originator_id)) for n in page])
            waiting = [d for d in found.values() if d.version == 1 and d.outcome is None and not d.attempts]
            for d in waiting:
                d.defer(now, "requested before an upgrade: dispatched now", now)
            save_batch(self, waiting)
            handed += len(waiting)
            start = page[-1].id + 1
        return handed

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
            for d in deliveries:  # every path decides; should one not, the schedule takes it up
                if d.unsaved_request:
                    d.defer(now, "not decided in the pass that took it up: tried again", now)
            # Not the requests that left as new Deliveries (requested_dispatching): their old
            # objects hold nothing to store, and must not go back into the cache.
            # A new request held or stopped at once is stored as one event (with_first_decision).
            changed = [d.with_first_decision() for d in deliveries if d.pending_events]
            save_batch(self, changed, trackings, self._contact_claims(state.histories.values()))
        except Exception:
            forget_cache(self)
            raise

    def _dispatch_batch(self, batch: list[Delivery], leads: Leads, state: _Pass) -> None:
        outgoing: dict[str, list[tuple[Delivery, OutgoingMessage]]] = {}
        current = leads.current(d.lead_id for d in batch)  # as committed now, in any process
        self._load_histories({d.lead_id for d in batch if not d.is_settled}, state.histories)
        in_order = sorted(batch, key=request_order)
        state.batch = {d.id: d for d in in_order}
        ahead = self._ahead(in_order)
        with self.renderer.holding():  # the pass renders from the templates as they are now
            self._decide_each(in_order, ahead, current, leads, state, outgoing)
        for channel_name, items in outgoing.items():
            self._send(channel_name, items, leads, state)

    def _decide_each(
        self,
        in_order: list[Delivery],
        ahead: dict[UUID, list[tuple[UUID, datetime | None]]],
        current: dict[UUID, Lead],
        leads: Leads,
        state: _Pass,
        outgoing: dict[str, list[tuple[Delivery, OutgoingMessage]]],
    ) -> None:
        """Send, hold, skip or fail each message of the pass (``outgoing``: those to send, by channel)."""
        report = state.report
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
            out = self.open_before([(d.id, d.enrolment_id, d.requested_at, d.request_position) for d in batch])
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
        crash. It is tried again shortly after the earlier one is next due (as this pass just
        decided, for one in the same batch: held for a contact window, say). An earlier message
        this pass settled without sending (skipped: no consent, say; failed for good) holds
        nothing up: it will never leave."""
        batch = state.batch
        waiting = [
            (sid, batch[sid].deferred_until if sid in batch else due)  # as this pass decided it
            for sid, due in earlier
            if sid not in state.going and not (sid in batch and batch[sid].is_settled)
        ]
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

    def _marked(
        self,
        going: list[tuple[Delivery, tuple[str, ...]]],
        leads: Leads,
        state: _Pass,
        settled: tuple[list[Delivery], list[Claim]] = ([], []),
    ) -> list[bool]:
        """Commit the dispatch markers of messages about to leave together (each with where its
        tracked links lead), with the ``settled`` outcomes of those that left before (and the
        sends they add to their leads' contact logs), then look at their leads once more: an
        opt-out, goal or exit committed by any process before the markers stops its message."""
        for i, (d, links) in enumerate(going):
            if d.unsaved_request:  # its request and its marker in one event
                going[i] = (d.requested_dispatching(self._now_for(d), list(links)), links)
            else:
                d.dispatching(self._now_for(d), list(links))
        outcomes, contacts = settled
        save_batch(self, [*outcomes, *(d for d, _ in going)], claims=contacts)
        versions = latest_versions(leads, list({d.lead_id for d, _ in going}))
        stopped: list[Delivery] = []
        for d, _ in going:
            if versions.get(d.lead_id) == state.lead_versions[d.id]:
                continue
            refused = self.refusal(d, leads.fresh_lead(d.lead_id), self._purpose(d), self._now_for(d))
            if refused:
                d.mark_skipped(refused, self._now_for(d))
                stopped.append(d)
                state.report.skipped += 1
        if stopped:
            save_batch(self, stopped)
        return [d not in stopped for d, _ in going]

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


class _Progress:
    """The dispatcher's side of a channel's sending: the markers of the messages leaving together
    are committed just before they leave and their outcomes as soon as they are known, so a
    crash leaves at most the messages on the wire in doubt (one per connection), never a whole
    batch."""

    def __init__(
        self, deliveries: Deliveries, leads: Leads, state: _Pass, items: list[tuple[Delivery, OutgoingMessage]]
    ) -> None:
        self.deliveries, self.leads, self.state = deliveries, leads, state
        self.items = {m.send_id: (d, m) for d, m in items}

    def sending(self, messages: list[OutgoingMessage], settled: Sequence[SendResult] = ()) -> list[bool]:
        going = [(self.items[m.send_id][0], m.links) for m in messages]
        leaving = self.deliveries._marked(going, self.leads, self.state, self._settled(settled))
        for m, (d, _) in zip(messages, going, strict=True):  # a new request is a new Delivery now
            self.items[m.send_id] = (d, m)
        return leaving

    def sent(self, results: Sequence[SendResult]) -> None:
        settled, contacts = self._settled(results)
        save_batch(self.deliveries, settled, claims=contacts)

    def _settled(self, results: Sequence[SendResult]) -> tuple[list[Delivery], list[Claim]]:
        """The deliveries with these outcomes applied and, since a sent message counts towards
        its lead's caps, the sends they add to their leads' contact logs (saved in the same
        commit)."""
        settled: list[Delivery] = []
        for result in results:
            d, m = self.items[result.send_id]
            self.deliveries._settle(d, m, result, self.state)
            settled.append(d)
        leads = {d.lead_id for d in settled}
        return settled, self.deliveries._contact_claims(h for lead, h in self.state.histories.items() if lead in leads)
