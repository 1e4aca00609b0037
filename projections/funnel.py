"""FunnelCounts: leads by stage × audience × source channel, messages per journey step, and the
marketing facts the reports and the dashboard group: one row per lead (first and last touch,
when it reached each stage, funded volume), daily counts, score bands and split arms."""

from __future__ import annotations

from datetime import datetime, tzinfo
from decimal import Decimal
from functools import singledispatchmethod
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from eventsourcing.utils import get_topic

from engine.domain.delivery.delivery import Delivery, told
from engine.domain.journeys.enrolment import Enrolment
from engine.domain.leads.attribution import dimension_values
from engine.domain.leads.lead import Lead
from engine.domain.leads.lead import told as told_lead
from engine.domain.marketing.costs import DIMENSIONS  # columns of lead_facts: first_… and last_…
from engine.domain.shared.values import MILESTONES, Stage
from projections.base import ViewProjection, amount_of, sqlite_and_postgres
from projections.funnel_messages import first_click, waiting_moved
from projections.funnel_queries import CUBE_COUNTS, FunnelQueries
from projections.funnel_schema import funnel_ddl
from projections.journey_index import parse_ts, ts

LEAD_TOPICS = [
    get_topic(c) for c in (Lead.Captured, Lead.Segmented, Lead.StageChanged, Lead.Touched, Lead.LoanFunded, Lead.Scored)
]
DELIVERY_TOPICS = [
    get_topic(c)
    for c in (
        Delivery.Requested,  # for a first decision recorded with the request (see ``told``)
        Delivery.Sent,
        Delivery.Failed,
        Delivery.Skipped,
        Delivery.Deferred,
        Delivery.HeldForReview,
        Delivery.Released,
        Delivery.Clicked,
        Delivery.Converted,
        Delivery.Opened,
    )
]
JOURNEY_TOPICS = [get_topic(c) for c in (Enrolment.Started, Enrolment.SplitAssigned)]


class FunnelCounts(FunnelQueries):
    """Current stage per lead, every stage each lead ever reached, and send outcomes per step."""

    tables = (
        "funnel_leads",
        "funnel_reached",
        "funnel_messages",
        "lead_facts",
        "daily_counts",
        "daily_messages",
        "score_bands",
        "split_enrolments",
        "split_arms",
        "lead_cube",
        "band_counts",
        "reached_counts",
        "message_clicks",
        "waiting_sends",
    )
    # 2: lead_sources; 3: the marketing facts (lead_facts replaces lead_sources); 4: reaching a
    # stage reaches the stages before it; 5: clicks (message_clicks, split_arms.clicked_after);
    # 6: messages waiting now, as "retrying" (channel trouble) or "held" (a window, a cap, order);
    # 7: money in whole hundredths (BIGINT), exact in SQLite too (its NUMERIC kept binary floats)
    schema_version = 7
    counters: ClassVar[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
        "lead_cube": (("touch", "day", *DIMENSIONS), (*CUBE_COUNTS, "volume")),
        "daily_counts": (("day", "channel", "measure"), ("n", "amount")),
        "daily_messages": (("day", "journey_id", "channel", "outcome"), ("n",)),
        "band_counts": (("kind", "band", "day", "channel"), ("leads", "applied", "funded")),
        "reached_counts": (("stage", "audience"), ("n",)),
        "funnel_messages": (("journey_id", "step", "channel", "outcome"), ("n",)),
    }
    money = frozenset({"volume", "amount"})
    feeds = (("leads", LEAD_TOPICS), ("deliveries", DELIVERY_TOPICS), ("journeys", JOURNEY_TOPICS))
    #: Days (daily counts) are the lender's (bootstrap sets it from HUOKE_TIMEZONE).
    timezone: tzinfo = ZoneInfo("UTC")

    def day(self, moment: datetime) -> str:
        return moment.astimezone(self.timezone).date().isoformat()

    def ddl(self) -> list[str]:
        # Version 2's table of each lead's first source: lead_facts holds it now.
        old = f'"{self.datastore.schema}"."lead_sources"' if self.is_postgres else "lead_sources"  # type: ignore[attr-defined]
        return funnel_ddl(old)

    @singledispatchmethod
    def apply(self, event: Any, cursor: Any) -> None:
        """Events this view does not read are ignored."""

    @apply.register
    def _(self, e: Lead.Captured, c: Any) -> None:
        told = told_lead(e)[1:]  # its first screening, if it records it
        segmented = next((d for d in told if isinstance(d, Lead.Segmented)), None)
        audience = segmented.audience if segmented is not None else "general"
        c.execute(
            self.q(
                "INSERT INTO {t_funnel_leads} VALUES (?, ?, ?, 'new') "
                "ON CONFLICT (lead_id) DO NOTHING RETURNING lead_id"
            ),
            (str(e.originator_id), e.source["channel"], audience),
        )
        if c.fetchone() is not None:
            # A new lead, in its first screening's audience from the start: the same rows as
            # counting it under "general" and then moving it (that row touched, by nothing),
            # with three statements instead of eight.
            c.execute(self.q("INSERT INTO {t_funnel_reached} VALUES (?, ?)"), (str(e.originator_id), Stage.NEW.value))
            self._count_reached(c, Stage.NEW.value, audience, 1)
            if audience != "general":
                self._count_reached(c, Stage.NEW.value, "general", 0)
            told = [d for d in told if d is not segmented]
        else:
            self._reached(c, e.originator_id, (Stage.NEW.value,))
        values = dimension_values(e.source)
        marks = ", ".join("?" for _ in range(3 + 2 * len(DIMENSIONS) + 1 + len(MILESTONES) + 3))
        c.execute(
            self.q(f"INSERT INTO {{t_lead_facts}} VALUES ({marks}) ON CONFLICT (lead_id) DO NOTHING"),  # noqa: S608
            (
                str(e.originator_id),
                e.captured_at.isoformat(),
                self.day(e.captured_at),
                *(v for pair in zip(values, values, strict=True) for v in pair),
                0,
                *(None for _ in MILESTONES),
                None,
                0,
                0,
            ),
        )
        self._daily(c, e.captured_at, values[0], "captured")
        for decided in told:
            self.apply_one(decided, c)
        day = self.day(e.captured_at)
        for touch in ("first", "last"):
            self._cube(c, touch, day, values, {"leads": 1})

    def _cube(self, c: Any, touch: str, day: str, dims: list[str], deltas: dict[str, Any]) -> None:
        """Add ``deltas`` (count → change; ``volume`` → amount) to one row of the cube."""
        volume = Decimal(str(deltas.get("volume", 0)))
        self.count(c, "lead_cube", (touch, day, *dims), (*(int(deltas.get(m, 0)) for m in CUBE_COUNTS), volume))

    def _both(self, c: Any, facts: dict[str, Any], deltas: dict[str, Any]) -> None:
        """Count ``deltas`` in the cube rows of the lead's first and last touch."""
        for touch in ("first", "last"):
            self._cube(c, touch, facts["captured_day"], [facts[f"{touch}_{d}"] for d in DIMENSIONS], deltas)

    def _daily(self, c: Any, at: datetime, channel: str, measure: str, amount: Decimal = Decimal(0)) -> None:
        self.count(c, "daily_counts", (self.day(at), channel, measure), (1, amount))

    def _facts(self, c: Any, lead_id: Any, columns: str) -> dict[str, Any] | None:
        c.execute(self.q(f"SELECT {columns} FROM {{t_lead_facts}} WHERE lead_id = ?"), (str(lead_id),))  # noqa: S608
        row = c.fetchone()
        return dict(row) if row is not None else None

    @apply.register
    def _(self, e: Lead.Touched, c: Any) -> None:
        facts = self._facts(c, e.originator_id, "*")
        if facts is None:
            return
        # The lead's last touch moves: its whole count leaves the old last-touch row for the new.
        was = {
            "leads": 1,
            **{m: int(facts[f"{m}_at"] is not None) for m in MILESTONES},
            "multi_touch": int(facts["touches"] > 0),
            "loans": facts["funded_loans"],
            "volume": amount_of(facts["funded_volume"]),
        }
        old = [facts[f"last_{d}"] for d in DIMENSIONS]
        self._cube(c, "last", facts["captured_day"], old, {k: -Decimal(str(v)) for k, v in was.items()})
        self._cube(c, "last", facts["captured_day"], dimension_values(e.source), {**was, "multi_touch": 1})
        if not facts["touches"]:
            first = [facts[f"first_{d}"] for d in DIMENSIONS]
            self._cube(c, "first", facts["captured_day"], first, {"multi_touch": 1})
        sets = ", ".join(f"last_{d} = ?" for d in DIMENSIONS)
        c.execute(
            self.q(f"UPDATE {{t_lead_facts}} SET {sets}, touches = touches + 1 WHERE lead_id = ?"),  # noqa: S608
            (*dimension_values(e.source), str(e.originator_id)),
        )

    @apply.register
    def _(self, e: Lead.Segmented, c: Any) -> None:
        lead = str(e.originator_id)
        c.execute(self.q("SELECT audience FROM {t_funnel_leads} WHERE lead_id = ?"), (lead,))
        row = c.fetchone()
        if row is not None and dict(row)["audience"] != e.audience:  # its stages move to the new audience
            c.execute(self.q("SELECT stage FROM {t_funnel_reached} WHERE lead_id = ?"), (lead,))
            for stage in [dict(r)["stage"] for r in c.fetchall()]:
                self._count_reached(c, stage, dict(row)["audience"], -1)
                self._count_reached(c, stage, e.audience, 1)
        c.execute(self.q("UPDATE {t_funnel_leads} SET audience = ? WHERE lead_id = ?"), (e.audience, lead))

    @apply.register
    def _(self, e: Lead.StageChanged, c: Any) -> None:
        c.execute(self.q("UPDATE {t_funnel_leads} SET stage = ? WHERE lead_id = ?"), (e.to_stage, str(e.originator_id)))
        # Stages are passed in order: a lead that applied straight away was contacted and engaged
        # (the conversion funnel counts as the lead facts below and the attribution report do).
        passed = MILESTONES[: MILESTONES.index(e.to_stage) + 1] if e.to_stage in MILESTONES else (e.to_stage,)
        self._reached(c, e.originator_id, passed)
        facts = self._facts(c, e.originator_id, "*")
        if facts is None:
            return
        if e.to_stage == Stage.LOST.value:
            if facts["lost_at"] is None:
                c.execute(
                    self.q("UPDATE {t_lead_facts} SET lost_at = ? WHERE lead_id = ?"), (ts(e.at), str(e.originator_id))
                )
                self._daily(c, e.at, facts["first_channel"], "lost")
            return
        if e.to_stage not in MILESTONES:
            return
        # Stages are reached in order: reaching one reaches every stage before it not yet reached.
        new = [m for m in MILESTONES[: MILESTONES.index(e.to_stage) + 1] if facts[f"{m}_at"] is None]
        if not new:
            return
        sets = ", ".join(f"{m}_at = ?" for m in new)
        c.execute(
            self.q(f"UPDATE {{t_lead_facts}} SET {sets} WHERE lead_id = ?"),  # noqa: S608
            (*(ts(e.at) for _ in new), str(e.originator_id)),
        )
        for m in new:
            self._daily(c, e.at, facts["first_channel"], m)
        self._both(c, facts, dict.fromkeys(new, 1))
        if "applied" in new or "funded" in new:
            c.execute(self.q("SELECT kind, band FROM {t_score_bands} WHERE lead_id = ?"), (str(e.originator_id),))
            for scored in [dict(r) for r in c.fetchall()]:
                counts = (0, int("applied" in new), int("funded" in new))
                self._band(c, scored["kind"], scored["band"], facts, counts)
        c.execute(
            self.q("SELECT enrolment_id, step, assigned_at FROM {t_split_arms} WHERE lead_id = ?"),
            (str(e.originator_id),),
        )
        for arm in [dict(r) for r in c.fetchall()]:
            after = (e.at - parse_ts(arm["assigned_at"])).total_seconds()
            if after < 0:
                continue
            sets = ", ".join(f"{m}_after = COALESCE({m}_after, ?)" for m in new)
            c.execute(
                self.q(f"UPDATE {{t_split_arms}} SET {sets} WHERE enrolment_id = ? AND step = ?"),  # noqa: S608
                (*(after for _ in new), arm["enrolment_id"], arm["step"]),
            )

    @apply.register
    def _(self, e: Lead.LoanFunded, c: Any) -> None:
        facts = self._facts(c, e.originator_id, "*")
        if facts is None:
            return
        amount = e.amount.amount if e.amount else Decimal(0)  # None: stored before an amount was required
        self._both(c, facts, {"loans": 1, "volume": amount})
        c.execute(
            self.q(
                "UPDATE {t_lead_facts} SET funded_loans = funded_loans + 1, funded_volume = funded_volume + ? "
                "WHERE lead_id = ?"
            ),
            (self._amount(amount), str(e.originator_id)),
        )
        self._daily(c, e.at, facts["first_channel"], "loans funded", amount)

    @apply.register
    def _(self, e: Lead.Scored, c: Any) -> None:
        lead = str(e.originator_id)
        c.execute(self.q("SELECT band FROM {t_score_bands} WHERE lead_id = ? AND kind = ?"), (lead, e.kind))
        row = c.fetchone()
        old = dict(row)["band"] if row is not None else None
        if old == e.band:
            return
        c.execute(
            self.q(
                "INSERT INTO {t_score_bands} VALUES (?, ?, ?) "
                "ON CONFLICT (lead_id, kind) DO UPDATE SET band = excluded.band"
            ),
            (lead, e.kind, e.band),
        )
        facts = self._facts(c, lead, "captured_day, first_channel, applied_at, funded_at")
        if facts is None:
            return
        counts = (1, int(facts["applied_at"] is not None), int(facts["funded_at"] is not None))
        if old is not None:  # rescored into another band: the lead moves
            self._band(c, e.kind, old, facts, tuple(-n for n in counts))
        self._band(c, e.kind, e.band, facts, counts)

    def _band(self, c: Any, kind: str, band: str, facts: dict[str, Any], counts: tuple[int, ...]) -> None:
        self.count(c, "band_counts", (kind, band, facts["captured_day"], facts["first_channel"]), counts)

    @apply.register
    def _(self, e: Enrolment.Started, c: Any) -> None:
        c.execute(
            self.q("INSERT INTO {t_split_enrolments} VALUES (?, ?, ?) ON CONFLICT (enrolment_id) DO NOTHING"),
            (str(e.originator_id), str(e.lead_id), e.journey_id),
        )

    @apply.register
    def _(self, e: Enrolment.SplitAssigned, c: Any) -> None:
        c.execute(
            self.q("SELECT lead_id, journey_id FROM {t_split_enrolments} WHERE enrolment_id = ?"),
            (str(e.originator_id),),
        )
        row = c.fetchone()
        if row is None:
            return
        enrolment = dict(row)
        facts = self._facts(c, enrolment["lead_id"], ", ".join(f"{m}_at" for m in MILESTONES)) or {}
        after = []
        for m in MILESTONES:  # the stages the lead already reached (from the leads log) after this
            reached = facts.get(f"{m}_at")
            seconds = (parse_ts(reached) - e.at).total_seconds() if reached else None
            after.append(seconds if seconds is not None and seconds >= 0 else None)
        marks = ", ".join("?" for _ in range(7 + len(MILESTONES)))
        c.execute(
            self.q(f"INSERT INTO {{t_split_arms}} VALUES ({marks}) ON CONFLICT (enrolment_id, step) DO NOTHING"),  # noqa: S608
            (str(e.originator_id), e.step, enrolment["lead_id"], enrolment["journey_id"], e.arm, ts(e.at), *after,
             None),
        )  # fmt: skip

    def _reached(self, c: Any, lead_id: Any, stages: tuple[str, ...]) -> None:
        """Record the ``stages`` the lead reaches for the first time, counted under its audience."""
        lead = str(lead_id)
        c.execute(self.q("SELECT stage FROM {t_funnel_reached} WHERE lead_id = ?"), (lead,))
        known = {dict(r)["stage"] for r in c.fetchall()}
        new = [stage for stage in stages if stage not in known]
        if not new:
            return
        c.executemany(self.q("INSERT INTO {t_funnel_reached} VALUES (?, ?)"), [(lead, stage) for stage in new])
        c.execute(self.q("SELECT audience FROM {t_funnel_leads} WHERE lead_id = ?"), (lead,))
        row = c.fetchone()
        for stage in new:
            self._count_reached(c, stage, dict(row)["audience"] if row is not None else "general", 1)

    def _count_reached(self, c: Any, stage: str, audience: str, n: int) -> None:
        self.count(c, "reached_counts", (stage, audience), (n,))

    @apply.register
    def _(self, e: Delivery.Sent, c: Any) -> None:
        self._waited(c, e, None)
        self._message(c, e, "sent")

    @apply.register
    def _(self, e: Delivery.Failed, c: Any) -> None:
        if e.permanent:
            self._waited(c, e, None)
            self._message(c, e, "failed")
        else:
            self._waited(c, e, "retrying")

    @apply.register
    def _(self, e: Delivery.Requested, c: Any) -> None:
        for decided in told(e)[1:]:  # a first decision recorded with the request
            self.apply_one(decided, c)

    @apply.register
    def _(self, e: Delivery.Deferred, c: Any) -> None:
        self._waited(c, e, "retrying" if e.transient else "held")

    @apply.register
    def _(self, e: Delivery.Skipped, c: Any) -> None:
        self._waited(c, e, None)
        self._message(c, e, "skipped")

    @apply.register
    def _(self, e: Delivery.HeldForReview, c: Any) -> None:
        self._waited(c, e, None)
        self._message(c, e, "held for review")

    def _waited(self, c: Any, e: Any, kind: str | None) -> None:
        waiting_moved(self, c, e, kind)

    @apply.register
    def _(self, e: Delivery.Released, c: Any) -> None:
        """Released to be sent again: no longer held (its send counts when it happens)."""
        self.count(c, "funnel_messages", (e.journey_id, e.step, e.channel, "held for review"), (-1,))

    @apply.register
    def _(self, e: Delivery.Clicked, c: Any) -> None:
        """A message's first click of a kind (see ``first_click``)."""
        first_click(self, c, e)

    @apply.register
    def _(self, e: Delivery.Converted, c: Any) -> None:
        """An application that came through the message's link (its reference sent back)."""
        self.count(c, "funnel_messages", (e.journey_id, e.step, e.channel, "converted"), (1,))

    @apply.register
    def _(self, e: Delivery.Opened, c: Any) -> None:
        self.count(c, "funnel_messages", (e.journey_id, e.step, "email", "opened"), (1,))

    def _message(self, c: Any, e: Any, outcome: str) -> None:
        if outcome in ("sent", "failed", "skipped"):  # final outcomes, by the day they happened
            self.count(c, "daily_messages", (self.day(e.at), e.journey_id, e.channel, outcome), (1,))
        self.count(c, "funnel_messages", (e.journey_id, e.step, e.channel, outcome), (1,))


class FunnelProjection(ViewProjection):
    """The eventsourcing Projection over Leads (for a ProjectionRunner process)."""

    name = "funnel"
    topics = tuple(LEAD_TOPICS)


class FunnelDeliveriesProjection(ViewProjection):
    """The same view fed from Deliveries (a second runner; tracking is per upstream)."""

    name = "funnel"
    topics = tuple(DELIVERY_TOPICS)


class FunnelJourneysProjection(ViewProjection):
    """The same view fed from Journeys (enrolments and split arms)."""

    name = "funnel"
    topics = tuple(JOURNEY_TOPICS)


FunnelCountsSQLite, FunnelCountsPostgres = sqlite_and_postgres(FunnelCounts)
