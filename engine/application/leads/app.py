"""Leads: capture, re-capture and identity, lifecycle facts; the other jobs are mixed in from
their own modules (scoring, consent and erasure, reactions)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from eventsourcing.utils import get_topic

from engine.application.leads.base import UNKNOWN_LEAD, LeadsBase, Outcome
from engine.application.leads.commands import CaptureLead, LeadRef, RecordLifecycle
from engine.application.leads.consent import ConsentJobs
from engine.application.leads.reactions import ReactionJobs
from engine.application.leads.scoring import ScoringJobs
from engine.domain.leads.identity import LeadIdentity, identity_keys, lead_id_for
from engine.domain.leads.lead import Lead
from engine.domain.shared.errors import HuokeError, InvalidLeadError
from engine.domain.shared.money import Money, money_of
from engine.domain.shared.values import ConsentChannel, ConsentPurpose, Stage
from engine.eventstore import Claim, IntegrityError
from engine.eventstore.saving import add_claims, retry_conflicts, save_batch


class Leads(ScoringJobs, ConsentJobs, ReactionJobs, LeadsBase):
    """The leads bounded context: every change to a lead goes through here."""

    def capture_leads(self, commands: Iterable[CaptureLead]) -> list[Outcome]:
        """Capture a batch in one transaction; a conflicting batch is retried one by one."""
        batch = list(commands)
        try:
            # Fast path: assume every identity is new. Identity ids are deterministic, so a
            # known phone, e-mail or source id makes the insert fail and nothing is written.
            return self._capture(batch, look_up=False)
        except IntegrityError:
            # That pass changed no stored lead (it only made new ones), so the cache stays: a
            # returning lead (a second touch) in a batch must not cost every cached lead a reload.
            pass
        try:
            return self._capture(batch, look_up=True)
        except IntegrityError:
            self._forget_cache()
            return [self._capture_one_with_retry(c) for c in batch]
        except Exception:
            self._forget_cache()
            raise

    def _capture_one_with_retry(self, command: CaptureLead) -> Outcome:
        for _ in range(3):
            try:
                return self._capture([command], look_up=True)[0]
            except IntegrityError:
                self._forget_cache()
        return Outcome(None, error="could not capture: concurrent writers kept conflicting")

    def _capture(self, batch: list[CaptureLead], look_up: bool) -> list[Outcome]:
        pending: dict[UUID, Lead] = {}
        claims: list[Claim] = []  # the identity index's new entries, written with the events
        keys_of = [capture_keys(cmd) for cmd in batch]
        # Every key the batch names, with the lead it names already (one query): a key not in it
        # is new, and the batch claims it for the first lead that has it.
        claimed = self._identities({key for keys in keys_of for key in keys}) if look_up else {}
        outcomes = []
        suppressed = self.suppressed_contacts([cmd.contact for cmd in batch])
        for cmd, listed, keys in zip(batch, suppressed, keys_of, strict=True):
            at = cmd.captured_at or self.clock.now()
            lead_id = self._resolve(keys, claimed)
            created = lead_id is None
            conflicts: tuple[str, ...] = ()
            known: Lead | None = None if lead_id is None else (pending.get(lead_id) or self.repository.get(lead_id))
            if known is not None and known.erased:
                outcomes.append(Outcome(None, error="this person asked to be erased; not re-imported"))
                continue
            if created and listed:
                outcomes.append(
                    Outcome(None, error="this phone or e-mail opted out earlier (suppression list); not re-imported")
                )
                continue
            if lead_id is None or known is None:
                lead = Lead(
                    source=cmd.source,
                    contact=cmd.contact,
                    profile=cmd.profile,
                    interest=cmd.interest,
                    contact_issues=list(cmd.contact_issues),
                    captured_at=at,
                )
                lead_id = lead.id
            else:
                lead = known
                known_conflicts = len(lead.conflicts)
                incoming = {
                    "contact": cmd.contact,
                    "profile": cmd.profile,
                    "interest": cmd.interest,
                    "contact_issues": list(cmd.contact_issues),
                }
                lead.touch(cmd.source, at)
                lead.update(incoming, cmd.source, at)
                conflicts = tuple(lead.conflicts[known_conflicts:])
            for key in keys:
                if key not in claimed:
                    claimed[key] = lead_id
                    claims.append(Claim(self._hashed_key(key), str(lead_id)))
            for channel, granted in cmd.consents.items():
                self._consent(lead, channel, granted, cmd.origin or "capture", at)
            pending[lead_id] = lead
            outcomes.append(Outcome(lead_id, created=created, changed=created, conflicts=conflicts))
        if self.vault is not None:  # one transaction for the new leads' data keys
            self.vault.prepare(pending)
        self.screen(list(pending.values()), None)
        # A lead captured now: its consents and first screening in its Captured (one event).
        pending = {lead_id: lead.as_one_capture() for lead_id, lead in pending.items()}
        outcomes = [
            replace(o, changed=o.created or bool(pending[o.lead_id].pending_events)) if o.lead_id is not None else o
            for o in outcomes
        ]
        save_batch(self, pending.values(), claims=claims)
        return outcomes

    @staticmethod
    def _resolve(keys: list[str], claimed: dict[str, UUID]) -> UUID | None:
        """The lead known under the strongest of ``keys`` (``claimed``: every key known so far)."""
        return next((claimed[key] for key in keys if key in claimed), None)

    def record_lifecycle(self, commands: Iterable[RecordLifecycle]) -> list[Outcome]:
        """Apply lifecycle facts in one transaction; each bad fact is reported, not stored. A lead
        another process wrote meanwhile makes the batch read again and redo (facts are idempotent)."""
        batch = list(commands)
        return retry_conflicts(self, lambda: self._record_lifecycle(batch), self._forget_cache)

    def _record_lifecycle(self, commands: list[RecordLifecycle]) -> list[Outcome]:
        pending: dict[UUID, Lead] = {}
        outcomes = []
        for cmd in commands:
            try:
                lead_id = self.find_lead(cmd.lead)
                lead = pending.get(lead_id) or self.get_lead(lead_id)
                before = len(lead.pending_events)
                self._apply_lifecycle(lead, cmd, cmd.at or self.clock.now())
            except HuokeError as e:
                outcomes.append(Outcome(None, error=str(e)))
                continue
            pending[lead_id] = lead
            outcomes.append(Outcome(lead_id, changed=len(lead.pending_events) > before))
        self.screen(list(pending.values()), None)
        save_batch(self, pending.values())
        return outcomes

    def _amount(self, cmd: RecordLifecycle) -> Money | None:
        """The command's amount in the lender's currency (None when it states none)."""
        try:
            return money_of(cmd.amount, self.currency)
        except ArithmeticError:
            raise InvalidLeadError("amount", f"expected a number, got {cmd.amount!r}") from None

    def _apply_lifecycle(self, lead: Lead, cmd: RecordLifecycle, at: datetime) -> None:
        match cmd.kind:
            case "application_submitted":
                lead.submit_application(cmd.application_id, cmd.loan_type, self._amount(cmd), at)
            case "application_approved":
                lead.approve_application(cmd.application_id, self._amount(cmd), at)
            case "application_declined":
                lead.decline_application(cmd.application_id, cmd.reason or "not stated", at)
            case "loan_funded":
                lead.fund_loan(cmd.application_id, self._amount(cmd), at, cmd.term_months)
            case "repayment_missed":
                lead.miss_repayment(cmd.application_id, cmd.days_past_due, at)
            case "stage_changed":
                lead.advance_to(Stage(cmd.stage), cmd.reason or "reported by the lender", at)
            case "consent_granted":
                lead.grant_consent(
                    ConsentChannel(cmd.channel),
                    ConsentPurpose.MARKETING,
                    cmd.origin or "import",
                    cmd.reason or "consent reported",
                    at,
                )
            case "consent_withdrawn":
                lead.withdraw_consent(
                    ConsentChannel(cmd.channel),
                    ConsentPurpose.MARKETING,
                    cmd.origin or "import",
                    cmd.reason or "opt-out reported",
                    at,
                )
            case "tagged":
                lead.tag(cmd.tag, cmd.reason or "reported by the lender", at)

    def migrate_identities(self) -> int:
        """Index every person a store from before the identity index names in its
        ``LeadIdentity`` aggregates (one each per key, plain keys in the oldest stores), so
        look-ups and new captures find them; the number of entries added. Idempotent."""
        topic = get_topic(LeadIdentity.Claimed)
        added, start = 0, 1
        while page := self.recorder.select_notifications(start, 1000, topics=[topic]):
            entries: list[Claim] = []
            for note in page:
                identity = self.mapper.to_domain_event(note)
                key = str(getattr(identity, "key", ""))
                if key:
                    hashed = key if "#" in key else self._hashed_key(key)
                    entries.append(Claim(hashed, str(identity.lead_id)))  # type: ignore[attr-defined]
            added += add_claims(self, entries)
            start = page[-1].id + 1
        return added

    def find_lead(self, ref: LeadRef) -> UUID:
        """Resolve a reference to a captured lead's id."""
        if ref.lead_id:
            self.get_lead(ref.lead_id)
            return ref.lead_id
        keys = identity_keys(
            ref.source_channel or "", ref.external_id if ref.source_channel else None, ref.phone, ref.email
        )
        found = self._resolve(keys, self._identities(keys))
        by_contact_only = not (ref.source_channel and ref.external_id)
        if found is not None and by_contact_only and self.get_lead(found).erased:
            found = None  # an erased person's phone or e-mail no longer leads to them
        if found is None:
            raise InvalidLeadError("lead", f"{UNKNOWN_LEAD} {_describe(ref)}")
        return found


def capture_keys(command: CaptureLead) -> list[str]:
    """The identity keys a capture names (strongest first)."""
    source, contact = command.source, command.contact
    return identity_keys(source["channel"], source.get("external_id"), contact.get("phone"), contact.get("email"))


def by_person(commands: Sequence[CaptureLead]) -> list[list[int]]:
    """The positions of ``commands`` grouped by the person they name: two rows sharing any
    identity key (source id, phone or e-mail), directly or through others, are one group, in
    the order of the rows. Groups are independent: capturing them apart, in any order or at
    once, gives what capturing the batch in order gives (a group keeps its rows' order)."""
    parent = list(range(len(commands)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, command in enumerate(commands):
        for key in capture_keys(command):
            j = first.setdefault(key, i)
            a, b = root(i), root(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(len(commands)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _describe(ref: LeadRef) -> str:
    parts = [f"{k}={v}" for k, v in vars(ref).items() if v]
    return ", ".join(parts) or "nothing (give lead_id, source_channel+external_id, phone or email)"


__all__ = ["Leads", "Outcome", "by_person", "capture_keys", "lead_id_for"]
