"""huoke's outbound event format (``huoke.event/1``): each stored domain event as the bus relay
publishes it and webhooks POST it — its fields without personal data (sealed at rest, never on
the wire) and without the store's bookkeeping."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, is_dataclass
from typing import Any

from eventsourcing.utils import get_topic
from pydantic import BaseModel, Field

from engine.domain.delivery.delivery import PII_FIELDS as DELIVERY_PII
from engine.domain.journeys.enrolment import PII_FIELDS as ENROLMENT_PII
from engine.domain.leads.privacy import PII_FIELDS as LEAD_PII
from engine.domain.shared.money import Money

#: Fields never published: personal data (sealed at rest) and the store's own bookkeeping.
PERSONAL = {
    get_topic(cls): set(fields) for reg in (LEAD_PII, DELIVERY_PII, ENROLMENT_PII) for cls, fields in reg.items()
}
BOOKKEEPING = {"originator_id", "originator_version", "timestamp", "originator_topic", "_sealed"}


class WireEvent(BaseModel):
    """What the relay publishes for each domain event (version 1)."""

    schema_: str = Field("huoke.event/1", alias="schema")
    id: str = Field(description="<aggregate id>:<version>, also the Nats-Msg-Id")
    type: str = Field(description="Aggregate.Event, e.g. Lead.StageChanged")
    aggregate: str
    aggregate_id: str
    version: int
    log: str = Field(description="the huoke log it comes from: leads, journeys or deliveries")
    position: int = Field(description="its position in that log")
    at: str = Field(description="when it happened (ISO 8601)")
    data: dict[str, Any] = Field(description="the event's fields, personal data left out")


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _wire_value(value: Any) -> Any:
    """Money as ``{"amount": "1250.50", "currency": "CNY"}`` (exact text); a record as its fields;
    anything else (times, ids, decimals) as its text."""
    if isinstance(value, Money):
        return {"amount": str(value.amount), "currency": value.currency}
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return str(value)


def wire_event(app: Any, note: Any) -> tuple[str, WireEvent]:
    """The subject and wire message of one stored event (a notification of ``app``'s log)."""
    qualname = note.topic.partition(":")[2]
    aggregate, _, event = qualname.partition(".")
    compressor = getattr(app.mapper, "compressor", None)  # stored states are compressed
    state = app.mapper.transcoder.decode(compressor.decompress(note.state) if compressor else note.state)
    hidden = BOOKKEEPING | PERSONAL.get(note.topic, set())
    data = {k: v for k, v in state.items() if k not in hidden}
    at = data.get("at") or data.get("captured_at") or state.get("timestamp")
    message = WireEvent(
        id=f"{note.originator_id}:{note.originator_version}",
        type=qualname,
        aggregate=snake(aggregate),
        aggregate_id=str(note.originator_id),
        version=note.originator_version,
        log=app.name.lower(),
        position=note.id,
        at=at.isoformat() if hasattr(at, "isoformat") else str(at),
        data=json.loads(json.dumps(data, default=_wire_value)),
    )
    return f"{snake(aggregate)}.{snake(event)}", message
