"""Referrals as a marketer and finance use them, with the bundled programmes: a customer's code
(`referrals code`, in `leads show --json`, on the shared link's page), friends imported with it,
their loans funded by an events file, `run`, then `referrals ledger --json`, `review`,
`approve`, `reject --note` and `payouts --out` (a CSV with formula cells neutralised)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engine.application.delivery.links import LinkKeys
from engine.entrypoints.cli import app
from engine.entrypoints.http import create_app
from tests.helpers import TEST_LINK_KEY, cli_environment

runner = CliRunner()
HEADER = (
    "source_channel,external_id,name,phone,email,language,birth_year,employment_type,loan_type,device_id,referral_code"
)


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cli_environment(tmp_path, monkeypatch)
    invoke("db", "init")
    invoke("journeys", "publish")
    return tmp_path


def funded(ref: str, app_id: str, amount: str, at: str) -> list[str]:
    return [f"{kind},{ref},{app_id},consumer,{amount},{at}" for kind in
            ("application_submitted", "application_approved", "loan_funded")]  # fmt: skip


def test_referrals_from_code_to_payout_file(env: Path) -> None:
    (env / "customer.csv").write_text(
        f"{HEADER}\nweb_form,C1,Zhou Min,13800138001,zhou@example.com,en,1988,salaried,consumer,dev-c,\n",
        encoding="utf-8",
    )
    invoke("leads", "import", str(env / "customer.csv"))
    (env / "customer_events.csv").write_text(
        "type,phone,application_id,loan_type,amount,at\n"
        + "\n".join(funded("13800138001", "C-1", "60000", "2026-03-02T10:00")),
        encoding="utf-8",
    )
    invoke("events", "import", str(env / "customer_events.csv"))
    code = json.loads(invoke("referrals", "code", "13800138001", "--json"))["referral_code"]
    shown = json.loads(invoke("leads", "show", "13800138001", "--json"))["lead"]["referral"]
    assert shown["referral_code"] == code and shown["referral_link"].endswith(f"/r/{code}")
    page = TestClient(create_app(None, LinkKeys(TEST_LINK_KEY))).get(f"/r/{code.lower()}")  # type: ignore[arg-type]
    assert page.status_code == 200 and code in page.text and "Zhou" not in page.text
    friends = [
        f"web_form,F1,Li Lei,13800138002,li@example.com,en,1992,salaried,consumer,dev-1,{code}",
        f"web_form,F2,Wu Yi,13800138003,wu@example.com,en,1993,salaried,consumer,dev-c,{code.lower()}",
        "web_form,F3,Ma Ke,13800138004,ma@example.com,en,1991,salaried,consumer,dev-3,NOTACODE",
    ]
    (env / "friends.csv").write_text(HEADER + "\n" + "\n".join(friends) + "\n", encoding="utf-8")
    invoke("leads", "import", str(env / "friends.csv"))
    events = funded("13800138002", "F-1", "30000", "2026-03-10T10:00") + funded(
        "13800138003", "F-2", "30000", "2026-03-10T11:00"
    )
    (env / "friend_events.csv").write_text(
        "type,phone,application_id,loan_type,amount,at\n" + "\n".join(events), encoding="utf-8"
    )
    invoke("events", "import", str(env / "friend_events.csv"))
    invoke("run", "--until", "2026-03-11")
    doc = json.loads(invoke("referrals", "ledger", "--json"))
    assert doc["schema"] == "huoke.referrals/1"
    by_status = sorted((r["status"], "; ".join(r["reasons"])) for r in doc["referrals"])
    assert by_status == [
        ("held", "referrer and referee share device"),
        ("paid", ""),
        ("refused", "code NOTACODE belongs to no lead"),
    ]
    held = json.loads(invoke("referrals", "review", "--json"))["referrals"]
    assert len(held) == 1
    rejected = runner.invoke(app, ["referrals", "reject", held[0]["referral_id"][:8]])
    assert rejected.exit_code == 2  # --note is required
    assert "is paid" in invoke("referrals", "approve", held[0]["referee_id"], "--note", "checked")
    statuses = sorted(r["status"] for r in json.loads(invoke("referrals", "ledger", "--json"))["referrals"])
    assert statuses == ["paid", "paid", "refused"]
    # Re-importing everything pays nothing twice.
    for name in ("customer.csv", "friends.csv"):
        invoke("leads", "import", str(env / name))
    invoke("events", "import", str(env / "friend_events.csv"))
    invoke("run", "--until", "2026-03-12")
    out = env / "payouts.csv"
    invoke("referrals", "payouts", "--out", str(out))
    with out.open(encoding="utf-8") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 4 and sorted(line["side"] for line in lines) == ["referee", "referee", "referrer", "referrer"]
    assert {line["amount"] for line in lines if line["side"] == "referrer"} == {"200.0"}
    assert {(line["amount"], line["unit"]) for line in lines if line["side"] == "referrer"} == {("200.0", "CNY")}
    # The friend's 0.25-point rate discount is not 0.25 CNY; what it costs the lender is in CNY.
    assert {(line["kind"], line["amount"], line["unit"], line["currency"]) for line in lines
            if line["side"] == "referee"} == {("rate_discount", "0.25", "percentage points", "CNY")}  # fmt: skip
    again = runner.invoke(app, ["referrals", "payouts", "--out", str(out)])
    assert again.exit_code == 2 and "--force" in again.output
