"""The reports as a marketing manager runs them: a costs file from finance (bad rows named, good
ones kept, a re-import changing nothing), every report as a table that fits 80 columns without
cutting a name, the JSON documents, and a report as of an earlier day."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.application.report_catalog import REPORTS
from engine.entrypoints import cli_common
from engine.entrypoints.cli import app
from tests.e2e.test_cli_referrals import invoke, runner
from tests.helpers import cli_environment

COLUMNS = "source_channel,external_id,partner,campaign,utm_source,utm_medium,utm_campaign,event,name,phone,language"
LEADS = f"""{COLUMNS},loan_type,captured_at
car_dealer,D1,Geely Hangzhou Auto City Dealership,,,,,,Li Wei,13800138001,en,auto,2026-03-02T10:00
car_dealer,D2,Geely Hangzhou Auto City Dealership,,,,,,Wang Fang,13800138002,en,auto,2026-03-02T11:00
web_form,W1,,,baidu,cpc,first-home-2026,,Zhang Min,13800138003,en,consumer,2026-03-03T09:00
web_form,W2,,,wechat,social,first-home-2026,,Chen Jie,13800138004,en,consumer,2026-03-03T12:00
offline_fair,F1,,,,,,Shanghai International Home Finance Expo,Liu Yang,13800138005,en,mortgage,2026-03-04T15:00
web_form,W3,,,wechat,social,retarget-2026,,Liu Yang,13800138005,en,mortgage,2026-03-06T08:00
"""
EVENTS = """type,phone,application_id,loan_type,amount,at
application_submitted,13800138001,A1,auto,150000,2026-03-05T10:00
application_approved,13800138001,A1,auto,150000,2026-03-06T10:00
loan_funded,13800138001,A1,auto,150000,2026-03-07T10:00
application_submitted,13800138005,A2,mortgage,900000,2026-03-08T10:00
"""
COSTS = """kind,name,period,amount,currency,note
partner,Geely Hangzhou Auto City Dealership,2026-03,3100,CNY,monthly fee
utm_campaign,first-home-2026,2026-03-01..2026-03-31,6200.00,CNY,
tv,spring,2026-03,100,CNY,
event,Shanghai International Home Finance Expo,2026-03-04,2500,CNY,stand
partner,Geely Hangzhou Auto City Dealership,2026-02-30,10,USD,
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cli_environment(tmp_path, monkeypatch)
    monkeypatch.setattr(cli_common.console, "width", 80)
    invoke("db", "init")
    invoke("journeys", "publish")
    (tmp_path / "leads.csv").write_text(LEADS, encoding="utf-8")
    (tmp_path / "events.csv").write_text(EVENTS, encoding="utf-8")
    (tmp_path / "costs.csv").write_text(COSTS, encoding="utf-8")
    invoke("leads", "import", str(tmp_path / "leads.csv"))
    invoke("events", "import", str(tmp_path / "events.csv"))
    return tmp_path


def test_a_costs_file_keeps_its_good_rows_and_names_each_bad_one(env: Path) -> None:
    path = env / "costs.csv"
    result = runner.invoke(app, ["costs", "import", str(path)])
    assert result.exit_code == 1
    assert "5 rows — 3 new, 0 revised, 0 unchanged, 2 refused" in " ".join(result.stdout.split())
    # One line per problem, as file:line: field: problem (an editor jumps to it).
    assert f"{path}:4: kind: 'tv' is not one of channel, partner" in result.stderr
    assert f"{path}:6: period: " in result.stderr and f"{path}:6: currency: reports are in CNY" in result.stderr
    again = runner.invoke(app, ["costs", "import", str(path), "--json"])
    doc = json.loads(again.stdout)
    assert (doc["created"], doc["unchanged"], len(doc["errors"])) == (0, 3, 3)
    listed = json.loads(invoke("costs", "list", "--json"))["costs"]
    assert sorted(c["name"] for c in listed) == [
        "Geely Hangzhou Auto City Dealership",
        "Shanghai International Home Finance Expo",
        "first-home-2026",
    ]


def test_every_report_fits_80_columns_and_agrees_with_its_json(env: Path) -> None:
    runner.invoke(app, ["costs", "import", str(env / "costs.csv")])
    invoke("run")
    commands = [("report", name) for name in REPORTS]
    commands += [("costs", "list"), ("journeys", "list"), ("tasks", "list"), ("status",)]  # type: ignore[list-item]
    for command in commands:
        text = invoke(*command)
        too_wide = [line for line in text.splitlines() if len(line) > 80]
        assert too_wide == [], command
        assert "…" not in text, command  # wrapped or abbreviated with a legend, never cut
    attribution = json.loads(invoke("report", "attribution", "--json"))
    assert attribution["total"]["leads"] == 5 and attribution["total"]["multi_touch"] == 1
    partners = {r["value"]: r for r in attribution["dimensions"]["partner"]}
    assert partners["Geely Hangzhou Auto City Dealership"]["funded"] == 1
    text = invoke("report", "attribution", "--dimension", "partner")
    assert "Geely Hangzhou Auto City " in text and "\nDealership " in text  # wrapped at a space, whole
    costs = json.loads(invoke("report", "costs", "--json", "--margin", "0.02"))
    rows = {r["name"]: r for r in costs["by_cost"]}
    dealer = rows["Geely Hangzhou Auto City Dealership"]
    assert (dealer["spend"], dealer["leads"], dealer["cost_per_lead"], dealer["cost_per_funded"]) == (
        3100.0,
        2,
        1550.0,
        3100.0,
    )
    assert dealer["return_on_spend"] == round((150000 * 0.02 - 3100) / 3100, 4)
    assert rows["first-home-2026"]["cost_per_lead"] == 3100.0
    rates = {
        r["journey_id"]: r["conversion_rate"] for r in json.loads(invoke("report", "journeys", "--json"))["journeys"]
    }
    assert rates["after-funding"] is None and isinstance(rates["application-follow-up"], float)  # no goal: no 0%
    assert "after-funding v1: 1 entered, no goal set" in invoke("report", "journeys")
    last = json.loads(invoke("report", "attribution", "--touch", "last", "--json"))
    assert {r["value"]: r["leads"] for r in last["dimensions"]["utm_campaign"]}["retarget-2026"] == 1


def test_a_report_as_of_an_earlier_day_counts_what_had_happened_by_then(env: Path) -> None:
    invoke("run")
    now = json.loads(invoke("report", "attribution", "--json"))
    march_4 = json.loads(invoke("report", "attribution", "--as-of", "2026-03-04", "--json"))
    assert march_4["as_of"].startswith("2026-03-04T23:59:59")
    assert (march_4["total"]["leads"], march_4["total"]["multi_touch"], march_4["total"]["funded"]) == (5, 0, 0)
    march_7 = json.loads(invoke("report", "attribution", "--as-of", "2026-03-07T18:00", "--json"))
    assert (march_7["total"]["funded"], march_7["total"]["applied"], march_7["total"]["multi_touch"]) == (1, 1, 1)
    assert now["total"]["applied"] == 2
    first = runner.invoke(app, ["report", "scores", "--as-of", "2026-03-05"])
    assert "funnel as of 2026-03-05 23:59, from the event log" in first.stderr and "100%" in first.stderr
    again = runner.invoke(app, ["report", "scores", "--as-of", "2026-03-05"])
    assert again.exit_code == 0 and again.stderr == ""  # kept: nothing to replay, no progress bar
    daily = json.loads(invoke("report", "daily", "--as-of", "2026-03-03", "--json"))
    assert [d["day"] for d in daily["days"]] == ["2026-03-02", "2026-03-03"]
    bad = runner.invoke(app, ["report", "funnel", "--as-of", "last tuesday"])
    assert bad.exit_code == 2 and "--as-of: expected a day like 2026-03-31" in bad.output
    typo = runner.invoke(app, ["report", "experiments", "--journey", "young-profesionals"])
    assert typo.exit_code == 2  # not an empty report as if the journey had no leads
    assert "--journey: no journey 'young-profesionals' was published; published: " in typo.stderr
    assert "young-professionals" in typo.stderr.split("published: ")[1]


def test_a_report_table_keeps_the_longest_channel_name_whole_at_80_columns() -> None:
    """The widest table (stages by source channel) with the longest channel name: whole on one
    line with five-digit counts; with seven-digit counts it folds, and nothing is cut."""
    from io import StringIO

    from rich.console import Console

    from engine.domain.shared.values import SourceChannel
    from engine.presentation.tables import report_table

    longest = max((c.value for c in SourceChannel), key=len)
    heads = ["new", "cont.", "eng.", "appl.", "appr.", "fund.", "lost", "total"]  # as report funnel prints them
    for count, whole in (("99999", True), ("1234567", False)):
        table = report_table("Leads now at each stage, by source channel", ["source channel", *heads])
        table.add_row(longest, *[count] * len(heads))
        out = StringIO()
        Console(file=out, width=80).print(table)
        lines = out.getvalue().splitlines()
        assert max(len(line) for line in lines) <= 80 and "…" not in out.getvalue()
        assert next(line for line in lines if count in line).count(count) == len(heads)  # every count whole
        if whole:
            assert any(line.startswith(longest + " ") for line in lines), out.getvalue()
