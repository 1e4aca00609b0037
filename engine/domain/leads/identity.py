"""Who a lead is: the identity keys that mean the same person (source id, phone, e-mail) and the
ids derived from them. The index that maps each key to one lead is the leads store's claims,
written with the capture's events; stores from before it kept one ``LeadIdentity`` aggregate
per key, which ``db init`` indexes once and which is kept here to read them."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from engine.domain.shared.topics import keep_topics
from engine.domain.shared.values import derive_id


def identity_keys(source_channel: str, external_id: str | None, phone: str | None, email: str | None) -> list[str]:
    """The keys that identify one person; any match means the same lead (strongest first)."""
    keys = []
    if external_id:
        keys.append(f"source:{source_channel}:{external_id}")
    if phone:
        keys.append(f"phone:{phone}")
    if email:
        keys.append(f"email:{email.lower()}")
    return keys


class LeadIdentity(Aggregate):
    """One identity key (source id, phone or e-mail) → one lead, as stores before the claims
    index kept it (read only by the migration; nothing writes it now)."""

    class Claimed(Aggregate.Created):
        key: str
        lead_id: UUID

    @event(Claimed)
    def __init__(self, key: str, lead_id: UUID) -> None:
        self.key = key
        self.lead_id = lead_id

    @staticmethod
    def create_id(key: str, **_: Any) -> UUID:
        return identity_id_for(key)


def identity_id_for(key: str) -> UUID:
    """Id of the identity index aggregate for ``key``."""
    return derive_id("identity", key)


def lead_id_for(key: str) -> UUID:
    """Id of a lead first seen under identity ``key``."""
    return derive_id("lead", key)


keep_topics("engine.domain.lead", LeadIdentity)
