"""The marketer's workshop as use cases, without the CLI or the API: a broken draft is refused
with its file and line, a dry-run publish changes nothing, a draft is previewed and backtested
on throwaway engines, and nothing reaches a lead."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from engine.application.journeys import workshop
from engine.application.journeys.simulation import arrivals_from_rows, hypothetical_lead, with_facts
from engine.bootstrap import FolderWorkshop
from engine.domain.shared.errors import JourneyValidationError
from tests.conftest import ROOT, START, MakeEngine, settings_of
from tests.helpers import emails, sms_lines


def _folder_with(tmp_path: Path, file: str, change: tuple[str, str] | None = None) -> Path:
    """A copy of the bundled journeys folder, one journey's file changed (``old`` → ``new``)."""
    folder = tmp_path / "journeys"
    shutil.copytree(ROOT / "journeys", folder)
    if change is not None:
        path = folder / file
        text = path.read_text(encoding="utf-8")
        assert change[0] in text
        path.write_text(text.replace(change[0], change[1], 1), encoding="utf-8")
    return folder


def test_a_broken_draft_is_refused_with_its_file_and_line_and_the_folder_still_reads(
    make_engine: MakeEngine, tmp_path: Path
) -> None:
    engine = make_engine()
    folder = _folder_with(tmp_path, "young_professionals.yaml", ("template: yp_welcome}", "template: yp_welcom}"))
    shop = FolderWorkshop(settings_of(engine).model_copy(update={"journeys_dir": folder}))
    doc = workshop.validation(shop)
    assert not doc["valid"]
    assert any("young_professionals.yaml" in p and "yp_welcom" in p for p in doc["problems"]), doc["problems"]
    assert workshop.folder_definitions(shop) == []  # the published versions still run
    with pytest.raises(JourneyValidationError):
        workshop.draft(shop, folder / "young_professionals.yaml")
    good = FolderWorkshop(settings_of(engine))
    assert workshop.validation(good)["valid"]
    assert {j["id"] for j in workshop.validation(good)["journeys"]} >= {"young-professionals", "seniors-advisor"}


def test_a_dry_run_publish_shows_the_new_version_and_changes_nothing(make_engine: MakeEngine, tmp_path: Path) -> None:
    engine = make_engine()
    before = engine.journeys.publication("young-professionals")
    assert before is not None
    folder = _folder_with(tmp_path, "young_professionals.yaml", ("name: ", "name: Renamed "))
    shop = FolderWorkshop(settings_of(engine).model_copy(update={"journeys_dir": folder}))
    reports = workshop.publish_folder(engine, shop, "test", "rename", None, dry_run=True)
    changed = {r["journey_id"]: r for r in reports if r["changed"]}
    assert set(changed) == {"young-professionals"}
    assert changed["young-professionals"]["version"] == before.latest + 1
    after = engine.journeys.publication("young-professionals")
    assert after is not None and after.latest == before.latest  # nothing was published


def test_a_draft_is_previewed_and_backtested_and_nothing_is_sent(make_engine: MakeEngine, tmp_path: Path) -> None:
    engine = make_engine()
    settings = settings_of(engine)
    shop = FolderWorkshop(settings)
    journey, raw = workshop.draft(shop, ROOT / "journeys" / "young_professionals.yaml")
    capture = with_facts(hypothetical_lead(settings.default_locale), ["birth_year=1996", "employment_type=salaried",
                                                                      "monthly_income=25000"])  # fmt: skip
    seen = workshop.preview(shop, None, journey, raw, capture, START, 30)
    assert seen["entered"] and seen["messages"], seen.get("why")
    assert all(m["text"] for m in seen["messages"])

    rows = [(2, {"source_channel": "web_form", "external_id": "W1", "name": "Alex Chen", "phone": "+8613800138001",
                 "email": "alex@example.com", "language": "en", "birth_year": "1996", "employment_type": "salaried",
                 "monthly_income": "25000", "loan_type": "consumer", "loan_amount": "80000",
                 "consent_email": "true", "consent_sms": "true", "captured_at": START.isoformat()})]  # fmt: skip
    from zoneinfo import ZoneInfo

    from engine.adapters.lead_rows import lead_parser, lifecycle_parser

    tz = ZoneInfo(settings.timezone)
    arrivals = arrivals_from_rows(rows, [], lead_parser("CN", tz), lifecycle_parser("CN", tz), ("leads.csv", ""),
                                  START)  # fmt: skip
    assert len(arrivals) == 1
    reports, problem = workshop.backtest(shop, None, [(journey, raw, 0)], arrivals, 14)
    assert problem == "" and reports[0]["entered"] == 1
    assert sum(m["would_send"] for m in reports[0]["messages"]) >= 1
    engine.run(until=START + timedelta(hours=1))
    assert emails(settings.outbox_dir) == [] and sms_lines(settings.outbox_dir) == []  # the trials sent nothing
