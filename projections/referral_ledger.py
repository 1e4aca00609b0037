"""ReferralLedger: one row per referral (and refused attempt) with its state now — who referred
whom, by which rule, the programme, status, rewards, reasons — a view of the Referrals log for
`huoke referrals ledger`, the referral report and payouts."""

from __future__ import annotations

import json
from functools import singledispatchmethod
from typing import Any

from eventsourcing.utils import get_topic

from engine.domain.referrals.referral import LEDGER_EVENTS, Referral, ReferralAttempt
from engine.domain.shared.money import amount_text
from projections.base import SqlView, ViewProjection, sqlite_and_postgres

TOPICS = [get_topic(c) for c in LEDGER_EVENTS]
COLUMNS = (
    "referral_id", "referee_id", "referrer_id", "code", "status", "referred_at", "rule", "programme", "funded_amount",
    "reasons", "referrer_reward", "referee_reward", "paid_at", "applied", "reviewed_by", "review_note", "updated_at",
)  # fmt: skip
JSON_COLUMNS = ("reasons", "referrer_reward", "referee_reward")


class ReferralLedger(SqlView):
    """Referrals as finance and reviewers read them."""

    tables = ("referral_ledger",)
    feeds = (("referrals", TOPICS),)

    def ddl(self) -> list[str]:
        return [
            "CREATE TABLE IF NOT EXISTS {t_referral_ledger} (referral_id TEXT PRIMARY KEY, referee_id TEXT NOT NULL, "
            "referrer_id TEXT NOT NULL, code TEXT NOT NULL, status TEXT NOT NULL, referred_at TEXT NOT NULL, "
            "rule TEXT NOT NULL, programme TEXT NOT NULL, funded_amount TEXT NOT NULL, reasons TEXT NOT NULL, "
            "referrer_reward TEXT NOT NULL, referee_reward TEXT NOT NULL, paid_at TEXT NOT NULL, "
            "applied INTEGER NOT NULL, reviewed_by TEXT NOT NULL, review_note TEXT NOT NULL, updated_at TEXT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS referral_ledger_status ON {t_referral_ledger} (status, referred_at)",
        ]

    def _insert(self, c: Any, e: Any, referrer: Any, status: str, rule: str, reasons: list[str]) -> None:
        c.execute(
            self.q(
                "INSERT INTO {t_referral_ledger} VALUES (?, ?, ?, ?, ?, ?, ?, '', '', ?, "
                "'null', 'null', '', 0, '', '', ?) ON CONFLICT (referral_id) DO NOTHING"
            ),
            (str(e.originator_id), str(e.referee_id), str(referrer or ""), e.code, status, e.at.isoformat(), rule,
             json.dumps(reasons, ensure_ascii=False), e.at.isoformat()),
        )  # fmt: skip

    def _set(self, c: Any, e: Any, **values: Any) -> None:
        values["updated_at"] = e.at.isoformat()
        for key in JSON_COLUMNS:
            if key in values:
                values[key] = json.dumps(values[key], ensure_ascii=False)
        assignments = ", ".join(f"{k} = ?" for k in values)
        c.execute(
            self.q(f"UPDATE {{t_referral_ledger}} SET {assignments} WHERE referral_id = ?"),  # noqa: S608 - own names
            (*values.values(), str(e.originator_id)),
        )

    @singledispatchmethod
    def apply(self, event: Any, cursor: Any) -> None:
        """Events this view does not read are ignored."""

    @apply.register
    def _(self, e: ReferralAttempt.Refused, c: Any) -> None:
        self._insert(c, e, e.referrer_id, "refused", "", [e.reason])

    @apply.register
    def _(self, e: Referral.Recorded, c: Any) -> None:
        self._insert(c, e, e.referrer_id, "recorded", e.rule, [])

    @apply.register
    def _(self, e: Referral.RefereeApplied, c: Any) -> None:
        self._set(c, e, applied=1)

    @apply.register
    def _(self, e: Referral.Qualified, c: Any) -> None:
        self._set(c, e, status="qualified", programme=e.programme, funded_amount=amount_text(e.amount))

    @apply.register
    def _(self, e: Referral.NotQualified, c: Any) -> None:
        self._set(
            c, e, status="not_qualified", programme=e.programme, reasons=[e.reason], funded_amount=amount_text(e.amount)
        )

    @apply.register
    def _(self, e: Referral.Held, c: Any) -> None:
        self._set(c, e, status="held", reasons=list(e.reasons))

    @apply.register
    def _(self, e: Referral.Approved, c: Any) -> None:
        self._set(c, e, status="approved", reviewed_by=e.by, review_note=e.note)

    @apply.register
    def _(self, e: Referral.Rejected, c: Any) -> None:
        self._set(c, e, status="rejected", reviewed_by=e.by, review_note=e.note)

    @apply.register
    def _(self, e: Referral.Capped, c: Any) -> None:
        self._set(c, e, status="capped", reasons=[e.reason])

    @apply.register
    def _(self, e: Referral.Paid, c: Any) -> None:
        self._set(
            c,
            e,
            status="paid",
            referrer_reward=e.referrer_reward,
            referee_reward=e.referee_reward,
            paid_at=e.at.isoformat(),
        )

    @apply.register
    def _(self, e: Referral.ClawedBack, c: Any) -> None:
        self._set(c, e, status="clawed_back", reasons=[e.reason])

    # ---- queries ---------------------------------------------------------------------------

    def ledger(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every referral (or those with ``status``), in the order referred."""
        sql = f"SELECT {', '.join(COLUMNS)} FROM {{t_referral_ledger}}"  # noqa: S608 - fixed names
        params: tuple[Any, ...] = ()
        if status:
            sql, params = sql + " WHERE status = ?", (status,)
        rows = self.rows(sql + " ORDER BY referred_at, referral_id", params)
        for row in rows:
            for key in JSON_COLUMNS:
                row[key] = json.loads(row[key])
            row["applied"] = bool(row["applied"])
            row["paid_at"] = row["paid_at"] or None
        return rows


class ReferralLedgerProjection(ViewProjection):
    """The eventsourcing Projection over Referrals (for a ProjectionRunner process)."""

    name = "referral_ledger"
    topics = tuple(TOPICS)


ReferralLedgerSQLite, ReferralLedgerPostgres = sqlite_and_postgres(ReferralLedger)
