"""The referral ledger's rows: each referral (or refused attempt) with its state now, folded
from its events in order (what ``huoke referrals ledger`` lists, straight from the log)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from engine.domain.referrals.referral import Referral
from engine.domain.shared.money import amount_text


def ledger_row(rid: UUID, referee: UUID, referrer: Any, code: str, status: str, at: datetime) -> dict[str, Any]:
    """A referral's (or refused attempt's) ledger row as first recorded."""
    return {
        "referral_id": str(rid),
        "referee_id": str(referee),
        "referrer_id": str(referrer or ""),
        "code": code,
        "status": status,
        "referred_at": at.isoformat(),
        "rule": "",
        "programme": "",
        "funded_amount": "",
        "reasons": [],
        "referrer_reward": None,
        "referee_reward": None,
        "paid_at": None,
        "applied": False,
        "updated_at": at.isoformat(),
    }


def fold_into_row(row: dict[str, Any], e: Any) -> None:
    """What one later event of the referral changes in its row."""
    row["updated_at"] = e.at.isoformat()
    match e:
        case Referral.RefereeApplied():
            row["applied"] = True
        case Referral.Qualified():
            row.update(status="qualified", programme=e.programme, funded_amount=amount_text(e.amount))
        case Referral.NotQualified():
            row.update(
                status="not_qualified", programme=e.programme, reasons=[e.reason], funded_amount=amount_text(e.amount)
            )
        case Referral.Held():
            row.update(status="held", reasons=list(e.reasons))
        case Referral.Approved():
            row.update(status="approved", reviewed_by=e.by, review_note=e.note)
        case Referral.Rejected():
            row.update(status="rejected", reviewed_by=e.by, review_note=e.note)
        case Referral.Capped():
            row.update(status="capped", reasons=[e.reason])
        case Referral.Paid():
            row.update(status="paid", referrer_reward=e.referrer_reward, referee_reward=e.referee_reward)
            row["paid_at"] = e.at.isoformat()
        case Referral.ClawedBack():
            row.update(status="clawed_back", reasons=[e.reason])
