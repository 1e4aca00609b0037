"""DeliverySchedule: deliveries held until a time (quiet hours, caps, retries) — a view of Deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from engine.application.partitions import ALL, Partitions, bucket_of
from engine.domain.delivery.delivery import Delivery, told
from projections.base import SqlView, ViewProjection, partition_filter, sqlite_and_postgres
from projections.journey_index import parse_ts, ts

TOPICS = [
    get_topic(c)
    for c in (
        Delivery.Requested,
        Delivery.Deferred,
        Delivery.Sent,
        Delivery.Failed,
        Delivery.Skipped,
        Delivery.HeldForReview,
        Delivery.Released,
    )
]


class DeliverySchedule(SqlView):
    """Held deliveries by the time they may be tried again (indexed), and why they wait."""

    tables = ("held_deliveries", "delivery_buckets", "review_holds", "unsettled_sends")
    feeds = (("deliveries", TOPICS),)
    #: 2: open_sends, every message not yet settled by enrolment (the dispatcher keeps each
    #: enrolment's messages in order). 3: unsettled_sends in its place, with each request's
    #: position (messages requested at the same moment go in their steps' order).
    schema_version = 3

    def ddl(self) -> list[str]:
        old = f'"{self.datastore.schema}"."open_sends"' if self.is_postgres else "open_sends"  # type: ignore[attr-defined]
        return [
            f"DROP TABLE IF EXISTS {old}",  # version 2's, without the positions
            "CREATE TABLE IF NOT EXISTS {t_held_deliveries} (send_id TEXT PRIMARY KEY, due_at TEXT NOT NULL, "
            "channel TEXT NOT NULL, reason TEXT NOT NULL, bucket INTEGER NOT NULL)",
            "CREATE INDEX IF NOT EXISTS held_deliveries_order ON {t_held_deliveries} (due_at, send_id)",
            # Which lead bucket each delivery belongs to (Deferred events do not name the lead).
            "CREATE TABLE IF NOT EXISTS {t_delivery_buckets} (send_id TEXT PRIMARY KEY, bucket INTEGER NOT NULL)",
            # In-doubt messages waiting for an operator's word (HUOKE_IN_DOUBT=hold).
            "CREATE TABLE IF NOT EXISTS {t_review_holds} (send_id TEXT PRIMARY KEY, channel TEXT NOT NULL, "
            "journey_id TEXT NOT NULL, step TEXT NOT NULL, reason TEXT NOT NULL, held_at TEXT NOT NULL)",
            # Every message requested and not yet sent, failed or skipped, by its enrolment, with
            # its request's position in the enrolment's log (request_order).
            "CREATE TABLE IF NOT EXISTS {t_unsettled_sends} (send_id TEXT PRIMARY KEY, enrolment_id TEXT NOT NULL, "
            "requested_at TEXT NOT NULL, position INTEGER NOT NULL)",
            "CREATE INDEX IF NOT EXISTS unsettled_sends_enrolment ON {t_unsettled_sends} (enrolment_id)",
        ]

    @singledispatchmethod
    def apply(self, event: Any, cursor: Any) -> None:
        """Events this view does not read are ignored."""

    @apply.register
    def _(self, e: Delivery.Requested, c: Any) -> None:
        c.execute(
            self.q("INSERT INTO {t_delivery_buckets} VALUES (?, ?) ON CONFLICT (send_id) DO NOTHING"),
            (str(e.originator_id), bucket_of(e.lead_id)),
        )
        c.execute(
            self.q("INSERT INTO {t_unsettled_sends} VALUES (?, ?, ?, ?) ON CONFLICT (send_id) DO NOTHING"),
            (str(e.originator_id), str(e.enrolment_id), ts(e.at), e.request_position),
        )
        for decided in told(e)[1:]:  # a first decision recorded with the request
            self.apply_one(decided, c)

    @apply.register
    def _(self, e: Delivery.Deferred, c: Any) -> None:
        c.execute(
            self.q(
                "INSERT INTO {t_held_deliveries} SELECT ?, ?, ?, ?, bucket FROM {t_delivery_buckets} WHERE send_id = ? "
                "ON CONFLICT (send_id) DO UPDATE SET due_at = excluded.due_at, reason = excluded.reason"
            ),
            (str(e.originator_id), ts(e.until), e.channel, e.reason, str(e.originator_id)),
        )

    @apply.register
    def _(self, e: Delivery.HeldForReview, c: Any) -> None:
        c.execute(self.q("DELETE FROM {t_held_deliveries} WHERE send_id = ?"), (str(e.originator_id),))
        c.execute(
            self.q("INSERT INTO {t_review_holds} VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (send_id) DO NOTHING"),
            (str(e.originator_id), e.channel, e.journey_id, e.step, e.reason, ts(e.at)),
        )

    @apply.register
    def _(self, e: Delivery.Released, c: Any) -> None:
        """Released to be sent again: due at once, the dispatcher sends it on its next pass."""
        send_id = str(e.originator_id)
        if e.resend:
            c.execute(
                self.q(
                    "INSERT INTO {t_held_deliveries} SELECT ?, ?, channel, ?, (SELECT bucket FROM "
                    "{t_delivery_buckets} WHERE send_id = ?) FROM {t_review_holds} WHERE send_id = ? "
                    "ON CONFLICT (send_id) DO UPDATE SET due_at = excluded.due_at, reason = excluded.reason"
                ),
                (send_id, ts(e.at), f"released by {e.by}", send_id, send_id),
            )
        c.execute(self.q("DELETE FROM {t_review_holds} WHERE send_id = ?"), (send_id,))

    @apply.register(Delivery.Sent)
    @apply.register(Delivery.Failed)
    @apply.register(Delivery.Skipped)
    def _(self, e: Any, c: Any) -> None:
        c.execute(self.q("DELETE FROM {t_held_deliveries} WHERE send_id = ?"), (str(e.originator_id),))
        c.execute(self.q("DELETE FROM {t_review_holds} WHERE send_id = ?"), (str(e.originator_id),))
        c.execute(self.q("DELETE FROM {t_unsettled_sends} WHERE send_id = ?"), (str(e.originator_id),))

    def open_before(
        self, sends: Sequence[tuple[UUID, UUID, datetime, int]]
    ) -> dict[UUID, list[tuple[UUID, datetime | None]]]:
        """For each (send id, enrolment id, requested at, request position) with earlier messages
        of the same enrolment still unsettled (in the dispatcher's ``request_order``): those
        (send id, when next due; None when not held to a time, e.g. in review). As of this view,
        which may lag its log a little."""
        enrolments = sorted({str(e) for _, e, _, _ in sends})
        if not enrolments:
            return {}
        marks = ", ".join("?" * len(enrolments))
        rows = self.rows(
            f"SELECT o.send_id, o.enrolment_id, o.requested_at, o.position, h.due_at FROM {{t_unsettled_sends}} o "  # noqa: S608
            f"LEFT JOIN {{t_held_deliveries}} h ON h.send_id = o.send_id WHERE o.enrolment_id IN ({marks})",
            enrolments,
        )
        by_enrolment: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_enrolment.setdefault(r["enrolment_id"], []).append(r)
        out: dict[UUID, list[tuple[UUID, datetime | None]]] = {}
        for send_id, enrolment_id, requested_at, position in sends:
            mine = (ts(requested_at), position, str(send_id))
            earlier = [
                (UUID(r["send_id"]), parse_ts(r["due_at"]) if r["due_at"] else None)
                for r in by_enrolment.get(str(enrolment_id), [])
                if r["send_id"] != str(send_id) and (r["requested_at"], int(r["position"]), r["send_id"]) < mine
            ]
            if earlier:
                out[send_id] = earlier
        return out

    def due(self, until: datetime, limit: int = 1000, parts: Partitions = ALL) -> list[UUID]:
        owned, params = partition_filter(parts)
        rows = self.rows(
            f"SELECT send_id FROM {{t_held_deliveries}} WHERE due_at <= ?{owned} "  # noqa: S608
            "ORDER BY due_at, send_id LIMIT ?",
            (ts(until), *params, limit),
        )
        return [UUID(r["send_id"]) for r in rows]

    def next_due(self, parts: Partitions = ALL) -> datetime | None:
        owned, params = partition_filter(parts)
        rows = self.rows(f"SELECT MIN(due_at) AS due FROM {{t_held_deliveries}} WHERE 1 = 1{owned}", params)  # noqa: S608
        return parse_ts(rows[0]["due"]) if rows and rows[0]["due"] else None

    def held_count(self) -> int:
        return int(self.rows("SELECT COUNT(*) AS n FROM {t_held_deliveries}")[0]["n"])

    def review_holds(self) -> list[dict[str, Any]]:
        """In-doubt messages held for an operator, oldest first."""
        return self.rows(
            "SELECT send_id, channel, journey_id, step, reason, held_at FROM {t_review_holds} ORDER BY held_at, send_id"
        )

    def held(self) -> list[dict[str, Any]]:
        """What is waiting and why, for operators."""
        return self.rows(
            "SELECT channel, reason, COUNT(*) AS n, MIN(due_at) AS next_due FROM {t_held_deliveries} "
            "GROUP BY channel, reason ORDER BY channel, reason"
        )


class DeliveryScheduleProjection(ViewProjection):
    """The eventsourcing Projection over Deliveries (for a ProjectionRunner process)."""

    name = "delivery_schedule"
    topics = tuple(TOPICS)


DeliveryScheduleSQLite, DeliverySchedulePostgres = sqlite_and_postgres(DeliverySchedule)
