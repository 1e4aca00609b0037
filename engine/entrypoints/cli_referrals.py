"""``huoke referrals``: the ledger, the held rewards and a reviewer's decisions, finance's
payout file, and a lead's own code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from engine.bootstrap.importing import find_lead
from engine.bootstrap.services import advance_views_if_alone
from engine.domain.referrals.ledger import payout_lines
from engine.entrypoints.cli_common import (
    JsonOpt,
    app,
    console,
    current_user,
    emit_json,
    fail,
    opened,
    settings,
)
from engine.presentation import admin

referrals_app = typer.Typer(help="Referral rewards: ledger, review, payouts.", no_args_is_help=True)
app.add_typer(referrals_app, name="referrals")

SCHEMA = "huoke.referrals/1"


def _rows() -> list[dict[str, Any]]:
    with opened(settings(), journeys=False) as engine:
        return list(engine.referrals.ledger())  # the log itself: a decision just made shows at once


@referrals_app.command("ledger")
def referrals_ledger(as_json: JsonOpt = False) -> None:
    """Every referral and refused attempt: who referred whom, by which rule, the programme, the
    status now (recorded, qualified, held, paid, capped, rejected, clawed back) and why."""
    rows = _rows()
    if as_json:
        emit_json({"schema": SCHEMA, "referrals": rows})
        return
    console.print(admin.referral_table(f"Referral ledger — {len(rows)} referral(s)", rows))


@referrals_app.command("review")
def referrals_review(as_json: JsonOpt = False) -> None:
    """Rewards held by a fraud check: decide each with approve or reject --note."""
    rows = [r for r in _rows() if r["status"] == "held"]
    if as_json:
        emit_json({"schema": SCHEMA, "referrals": rows})
        return
    console.print(admin.referral_table(f"Held for review — {len(rows)}", rows))


def _decide(ref: str, approve: bool, note: str) -> None:
    s = settings()
    with opened(s) as engine:
        referral = engine.referrals.decide(ref, approve, current_user(), note, engine.leads)
        advance_views_if_alone(s, engine, frozenset({"ledger"}))  # report referrals shows it at once
    console.print(f"referral {str(referral.id)[:8]} is {referral.status}" + (f": {referral.reasons[-1]}" if
                  referral.status == "capped" else ""))  # fmt: skip


@referrals_app.command("approve")
def referrals_approve(
    ref: Annotated[str, typer.Argument(help="referral id (or its start) or the referee's lead id")],
    note: Annotated[str, typer.Option(help="what was checked")] = "",
) -> None:
    """Approve a held reward: it is paid at once, unless a cap or the budget stops it."""
    _decide(ref, True, note)


@referrals_app.command("reject")
def referrals_reject(
    ref: Annotated[str, typer.Argument(help="referral id (or its start) or the referee's lead id")],
    note: Annotated[str, typer.Option(help="why (required; the referrer may ask)")],
) -> None:
    """Reject a held reward with a note: nothing is paid."""
    _decide(ref, False, note)


@referrals_app.command("record")
def referrals_record(
    referee: Annotated[str, typer.Argument(help="the friend: lead id, phone, e-mail or source_channel:external_id")],
    code: Annotated[str, typer.Option(help="the referral code they quoted")],
) -> None:
    """A referral reported later (the friend told an agent who sent them): judged as of the
    friend's first contact, within 30 days of it; a loan already funded is judged at once."""
    s = settings()
    with opened(s) as engine:
        referee_id = find_lead(engine, referee, s.default_phone_region)
        result = engine.referrals.report(referee_id, code, engine.leads)
    what = getattr(result, "status", "refused")
    why = getattr(result, "reason", "") or "; ".join(getattr(result, "reasons", []))
    console.print(f"referral {str(result.id)[:8]}: {what}" + (f" ({why})" if why else ""), highlight=False)


@referrals_app.command("payouts")
def referrals_payouts(
    out: Annotated[Path, typer.Option(help="CSV for finance")],
    force: Annotated[bool, typer.Option("--force", help="replace an existing file")] = False,
) -> None:
    """Rewards paid (and those clawed back, as negative lines) as CSV: one line per side."""
    from engine.adapters.model_data import OutputFileError, write_rows

    header, lines = payout_lines(_rows())
    try:
        write_rows(out, header, lines, force)
    except OutputFileError as e:
        fail(str(e), 2)
    console.print(f"{len(lines)} payout line(s) written to {out}")


@referrals_app.command("code")
def referrals_code(
    ref: Annotated[str, typer.Argument(help="lead id, phone, e-mail or source_channel:external_id")],
    as_json: JsonOpt = False,
) -> None:
    """A lead's own referral code and the link friends open."""
    s = settings()
    with opened(s, journeys=False) as engine:
        lead_id = find_lead(engine, ref, s.default_phone_region)
        found = engine.deliveries.referral_vars(lead_id)
    if as_json:
        emit_json({"lead_id": str(lead_id), **found})
        return
    console.print(f"{found['referral_code']}  {found['referral_link']}")
