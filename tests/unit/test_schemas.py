"""Import rows: contact details validated with phonenumbers and email-validator."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from engine.adapters.lead_rows import LeadRow, LifecycleRow
from engine.application.importing import RowError

TZ = ZoneInfo("Asia/Shanghai")


def row(**fields: str) -> dict[str, str]:
    return {"source_channel": "web_form", "external_id": "1", "name": "张伟", **fields}


def test_normalises_phone_and_email() -> None:
    cmd = LeadRow.model_validate(row(phone="138 0013 8000", email="Li.Wei@Example.COM", consent_sms="是")).to_command(
        "CN", TZ, "f:2"
    )
    assert cmd.contact["phone"] == "+8613800138000"
    assert cmd.contact["email"] == "Li.Wei@example.com"
    assert cmd.consents == {"sms": True}


def test_invalid_email_is_flagged_and_dropped_when_phone_is_valid() -> None:
    cmd = LeadRow.model_validate(row(phone="13800138000", email="nope@", consent_email="yes")).to_command("CN", TZ, "f")
    assert cmd.contact["email"] is None
    assert "e-mail 'nope@' is invalid" in cmd.contact_issues[0]
    assert cmd.consents == {}


def test_row_without_any_valid_contact_is_refused() -> None:
    with pytest.raises(RowError, match="no valid phone number or e-mail address"):
        LeadRow.model_validate(row(phone="12345")).to_command("CN", TZ, "f")


def test_unknown_values_are_refused_by_field() -> None:
    with pytest.raises(ValidationError) as info:
        LeadRow.model_validate(row(loan_type="yacht", colour="blue"))
    fields = {e["loc"][0] for e in info.value.errors()}
    assert fields == {"loan_type", "colour"}


def test_naive_capture_time_is_in_the_lenders_zone() -> None:
    cmd = LeadRow.model_validate(row(phone="13800138000", captured_at="2026-03-02T09:00")).to_command("CN", TZ, "f")
    assert cmd.captured_at is not None and cmd.captured_at.utcoffset().total_seconds() == 8 * 3600  # type: ignore[union-attr]


def test_lifecycle_row_needs_its_fields() -> None:
    with pytest.raises(RowError) as info:
        LifecycleRow.model_validate({"type": "loan_funded"}).to_command("CN", TZ, "f")
    assert {f for f, _ in info.value.problems} == {"application_id", "amount", "lead"}


def test_an_empty_language_cell_is_the_default_language() -> None:
    """It refused the whole row ("Input should be 'zh-CN' or 'en' (got None)"); a file without
    the column imported fine."""
    row = {"name": "Li Wei", "source_channel": "web_form", "external_id": "W1", "phone": "13800138000"}
    assert LeadRow.model_validate({**row, "language": ""}).language == "zh-CN"
    assert LeadRow.model_validate({**row, "language": "  "}).language == "zh-CN"
    assert LeadRow.model_validate({**row, "language": "EN"}).language == "en"
