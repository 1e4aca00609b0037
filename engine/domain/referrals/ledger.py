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


#: What a reward's amount counts, for the kinds that are not money.
_UNITS = {"rate_discount": "percentage points", "fee_waiver": "fees waived"}


def payout_lines(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """The rewards paid (and those clawed back, as negative lines) for finance: a header and one
    line per side of each referral."""
    lines: list[list[Any]] = []
    for r in rows:
        if r["status"] not in ("paid", "clawed_back") or not r["referrer_reward"]:
            continue
        sign = -1 if r["status"] == "clawed_back" else 1
        for side, lead in (("referrer", r["referrer_id"]), ("referee", r["referee_id"])):
            reward = r[f"{side}_reward"]
            lines.append(
                [r["referral_id"], r["programme"], side, lead, reward["kind"], str(sign * float(reward["amount"])),
                 _UNITS.get(reward["kind"]) or reward.get("currency", ""), reward.get("currency", ""),
                 str(sign * float(reward["cost"])), r["paid_at"], r["status"]]
            )  # fmt: skip
    # `unit` is what `amount` counts (a 0.25 rate discount is 0.25 percentage points, not 0.25 CNY);
    # `currency` is the cost's (and a cash reward's).
    header = ["referral_id", "programme", "side", "lead_id", "kind", "amount", "unit", "currency", "cost", "paid_at",
              "status"]  # fmt: skip
    return header, lines
