"""How huoke's value objects are stored: one transcoding per type, registered by every
application and every log reader (``StoreApplication``), so events carry ``Money`` and the
lead's records as typed values rather than strings and dicts.

The names below (``money``, ``huoke_loan``…) are written into stored events: they are schema,
chosen once, like event topics.
"""

from __future__ import annotations

from dataclasses import fields
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID

from eventsourcing.application import Application, Repository
from eventsourcing.persistence import JSONTranscoder, Transcoding, UUIDAsHex

from engine.domain.leads.records import Loan, Offer, ScoreRecord
from engine.domain.shared.money import Money
from engine.eventstore import saving
from engine.eventstore.recorders import uuid_of

V = TypeVar("V")


class MoneyAsDict(Transcoding):
    """``{"amount": "1250.50", "currency": "CNY"}``: the amount as exact decimal text."""

    type = Money
    name = "money"

    def encode(self, obj: Money) -> dict[str, str]:
        return {"amount": str(obj.amount), "currency": obj.currency}

    def decode(self, data: dict[str, str]) -> Money:
        return Money(Decimal(data["amount"]), data["currency"])


class RecordAsDict(Transcoding, Generic[V]):
    """A frozen dataclass as the dict of its fields (nested values transcoded in their turn)."""

    record: ClassVar[type[Any]]

    def encode(self, obj: V) -> dict[str, Any]:
        return {f.name: getattr(obj, f.name) for f in fields(self.record)}

    def decode(self, data: dict[str, Any]) -> V:
        return self.record(**data)  # type: ignore[no-any-return]


class LoanAsDict(RecordAsDict[Loan]):
    type = record = Loan
    name = "huoke_loan"


class ScoreRecordAsDict(RecordAsDict[ScoreRecord]):
    type = record = ScoreRecord
    name = "huoke_score"


class OfferAsDict(RecordAsDict[Offer]):
    type = record = Offer
    name = "huoke_offer"


class SharedUUIDAsHex(UUIDAsHex):
    """eventsourcing's own UUID transcoding (the same name: stored events read either way), one
    object for the same id while it is among the last read (``recorders.uuid_of``)."""

    def decode(self, data: str) -> UUID:
        return uuid_of(data)


VALUE_TRANSCODINGS: tuple[type[Transcoding], ...] = (
    MoneyAsDict,
    LoanAsDict,
    ScoreRecordAsDict,
    OfferAsDict,
    SharedUUIDAsHex,
)


def register_values(transcoder: JSONTranscoder) -> None:
    for transcoding in VALUE_TRANSCODINGS:
        transcoder.register(transcoding())


class StoreApplication(Application[UUID]):
    """An eventsourcing application over one of huoke's logs, knowing huoke's value types."""

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_values(transcoder)

    def construct_repository(self) -> Repository[UUID]:
        return saving.construct_repository(self)

    def finished(self, aggregate: Any) -> bool:
        """Whether a saved aggregate is done with: nothing in the usual flow loads it again (a
        settled message, an enrolment that exited). It leaves the aggregate cache once saved."""
        return False
