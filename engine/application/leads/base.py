"""The leads application's foundation: its store, its sealing mapper and the queries every job shares."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import get_topic

from engine.application.ports import Clock, ModelStore, PiiVault, Scorer
from engine.application.projecting import next_page
from engine.domain.delivery.delivery import Delivery
from engine.domain.journeys.enrolment import Enrolment
from engine.domain.leads.lead import Lead
from engine.domain.leads.privacy import PII_FIELDS, PII_OWNERS
from engine.domain.leads.segments import SegmentRules
from engine.domain.screening.products import Catalogue
from engine.domain.shared.errors import LeadNotFoundError
from engine.eventstore import Mapper, ProcessRecorder
from engine.eventstore.saving import (
    as_uuid,
    claimed,
    current_aggregates,
    forget_cache,
    fresh_get,
    sealing_mapper,
)
from engine.eventstore.values import StoreApplication

UPDATE_TOPICS = [get_topic(Enrolment.LeadUpdateRequested)]
EFFECT_TOPICS = [get_topic(Delivery.Sent), get_topic(Delivery.AddressBounced), get_topic(Delivery.Clicked)]
CAPTURED_TOPICS = [get_topic(Lead.Captured)]
#: The facts product matching reads, recorded with each match (affordability inputs).
MATCH_INPUTS = (
    "loan_type",
    "loan_amount",
    "loan_term_months",
    "monthly_income",
    "monthly_debt",
    "dti",
    "ltv",
    "tier",
    "region",
    "credit_band",
    "segments",
)
#: Propensity is trained on whether a lead applied within this many days of capture.
#: Credit is trained on loans at least this many months on book (bad = any missed repayment).


@dataclass(frozen=True)
class Outcome:
    """What one command did: the lead it touched, whether anything changed, or the error."""

    lead_id: UUID | None
    created: bool = False
    changed: bool = False
    error: str = ""
    #: Values another source gave that disagree with the lead's own (kept for review, not applied).
    conflicts: tuple[str, ...] = ()


#: How a lifecycle fact for a lead nobody captured is refused (the bus waits for such leads).
UNKNOWN_LEAD = "no captured lead matches"


class LeadsBase(StoreApplication):
    """The leads bounded context's application: the store, the sealing mapper, the queries the
    jobs share (capture, scoring, consent and erasure, reactions each in its own module)."""

    #: No snapshots: a snapshot holds a lead's whole state, personal data unsealed.
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {}

    recorder: ProcessRecorder

    def __init__(
        self,
        env: dict[str, str],
        rules: SegmentRules,
        clock: Clock,
        pepper: str = "huoke",
        catalogue: Catalogue | None = None,
        double_opt_in: bool = False,
        models: ModelStore | None = None,
        vault: PiiVault | None = None,
        currency: str = "CNY",
    ) -> None:
        self.vault = vault  # before the application builds its mapper
        self._index_key: bytes | None = None
        super().__init__(env)
        self.models = models
        self._scorers: dict[str, tuple[int, Scorer]] = {}
        self._models_loaded = False
        self.double_opt_in = double_opt_in
        self.rules = rules
        self.catalogue = catalogue
        self.clock = clock
        self.pepper = pepper
        #: The lender's currency: the currency of the amounts lifecycle events report.
        self.currency = currency

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    def close(self) -> None:
        super().close()
        close_vault = getattr(self.vault, "close", None)
        if close_vault is not None:
            close_vault()

    def construct_mapper(self) -> Mapper[UUID]:
        """Personal fields are sealed with each lead's own key when a vault is configured."""
        return sealing_mapper(super().construct_mapper(), self.vault, PII_FIELDS, owners=PII_OWNERS)

    def lead_ids(self) -> list[UUID]:
        """Every captured lead, in capture order."""
        out: list[UUID] = []
        position: int | None = None
        while True:
            page = next_page(self.recorder, position, CAPTURED_TOPICS, 5000)
            if page is None:
                return out
            out += [UUID(str(n.originator_id)) for n in page.notes]
            position = page.last

    def get_lead(self, lead_id: UUID) -> Lead:
        """The lead's current state (for other use cases; never returned to entrypoints)."""
        try:
            lead: Lead = self.repository.get(lead_id)
        except AggregateNotFoundError:
            raise LeadNotFoundError(lead_id) from None
        return lead

    def current(self, lead_ids: Iterable[UUID]) -> dict[UUID, Lead]:
        """Leads as committed now, for a batch (one version query; only changed leads are read)."""
        return current_aggregates(self, {as_uuid(i) for i in lead_ids})

    def fresh_lead(self, lead_id: UUID) -> Lead:
        """The lead as committed now, read from the store whatever this process cached."""
        try:
            lead: Lead = fresh_get(self, lead_id)
        except AggregateNotFoundError:
            raise LeadNotFoundError(lead_id) from None
        return lead

    def _hashed_key(self, key: str) -> str:
        """The identity index holds keyed hashes, never the phone, e-mail or source id itself."""
        if self._index_key is None:
            self._index_key = self.vault.index_key() if self.vault is not None else self.pepper.encode()
        kind = key.split(":", 1)[0]
        digest = hmac.new(self._index_key, key.encode(), hashlib.sha256).hexdigest()[:40]
        return f"{kind}#{digest}"

    def _identities(self, keys: Iterable[str]) -> dict[str, UUID]:
        """The lead each of ``keys`` already names, from the identity index (one query): it is
        the leads store's claims, written with the events that capture a lead under a key."""
        hashed = {self._hashed_key(key): key for key in keys}
        return {hashed[name]: UUID(value) for name, value in claimed(self, hashed).items()}

    def _forget_cache(self) -> None:
        forget_cache(self)
