"""huoke model and huoke segments, as an analyst uses them: train from a CSV with a time
column, list, score a partner's prospect list without importing it, evaluate, drift."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from demo.data import BACK_BOOK_COLUMNS, back_book
from engine.entrypoints.cli import app
from tests.e2e.test_cli import env  # noqa: F401 - the fixture

runner = CliRunner()


def write_csv(path: Path, rows: list[dict[str, object]], columns: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def test_train_list_score_evaluate_drift(env: Path) -> None:  # noqa: F811
    book = back_book(2000, datetime(2026, 3, 2, tzinfo=UTC))
    path = write_csv(env / "book.csv", book, BACK_BOOK_COLUMNS)
    result = runner.invoke(
        app,
        ["model", "train", "credit", "--csv", str(path), "--target", "bad", "--time-column", "funded_at", "--json"],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["version"] == 1 and "loan_id" not in doc["features"] and "dti" in doc["features"]
    assert doc["training"]["holdout"] == "later time window" and doc["training"]["test_rows"] == 600
    assert doc["metrics"]["auc"] > 0.6
    assert Path(doc["artefact"]).name == "credit-v1.scorecard.json"

    listed = json.loads(runner.invoke(app, ["model", "list", "--json"]).stdout)["models"]
    assert [(m["kind"], m["version"], m["active"]) for m in listed] == [("credit", 1, True)]
    assert listed[0]["sha256"] == doc["sha256"]
    table = runner.invoke(app, ["model", "list"])
    assert "credit" in table.stdout and f"{doc['metrics']['auc']:.3f}" in table.stdout

    # A partner's prospect list: scored, not imported.
    prospects = write_csv(
        env / "prospects.csv",
        [{**r, "ref": f"P{n}"} for n, r in enumerate(book[:50])],
        ["ref", *BACK_BOOK_COLUMNS[2:-1]],
    )
    out = env / "scored.csv"
    result = runner.invoke(
        app, ["model", "score", "credit", "--csv", str(prospects), "--out", str(out), "--id-column", "ref", "--json"]
    )
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as f:
        scored = list(csv.DictReader(f))
    assert len(scored) == 50 and list(scored[0]) == ["ref", "probability", "score", "band", "reasons"]
    assert scored[0]["ref"] == "P0" and scored[0]["band"] in "ABCDE" and 300 < int(scored[0]["score"]) < 800
    assert all(r["reasons"].count(";") <= 3 for r in scored)
    funnel = json.loads(runner.invoke(app, ["report", "funnel", "--json"]).stdout)
    assert funnel["leads"] == 0  # nothing was imported

    evaluated = json.loads(
        runner.invoke(
            app,
            [
                "model",
                "evaluate",
                "credit",
                "--csv",
                str(path),
                "--target",
                "bad",
                "--time-column",
                "funded_at",
                "--json",
            ],
        ).stdout
    )
    assert "after the training window" in evaluated["data"] and 590 < evaluated["metrics"]["rows"] <= 600

    same = json.loads(
        runner.invoke(app, ["model", "drift", "credit", "--csv", str(prospects), "--id-column", "ref", "--json"]).stdout
    )
    assert same["psi"][0]["characteristic"] == "score" and {r["characteristic"] for r in same["psi"]} >= {
        "dti",
        "monthly_income",
    }
    shifted_rows = [{**r, "dti": min(0.95, float(r["dti"]) + 0.35)} for r in book[:400]]
    shifted = write_csv(env / "shifted.csv", shifted_rows, BACK_BOOK_COLUMNS[:-1])
    drift = json.loads(runner.invoke(app, ["model", "drift", "credit", "--csv", str(shifted), "--json"]).stdout)
    verdicts = {r["characteristic"]: r["verdict"] for r in drift["psi"]}
    assert verdicts["dti"] == "shifted" and verdicts["loan_type"] == "stable"


def test_training_refuses_a_prohibited_column_and_too_little_data(env: Path) -> None:  # noqa: F811
    book = back_book(150, datetime(2026, 3, 2, tzinfo=UTC))
    rows = [{**r, "age": 30 + n % 30} for n, r in enumerate(book)]
    path = write_csv(env / "book.csv", rows, [*BACK_BOOK_COLUMNS, "age"])
    result = runner.invoke(app, ["model", "train", "credit", "--csv", str(path), "--target", "bad"])
    assert result.exit_code == 1 and "age is a prohibited basis" in result.output
    result = runner.invoke(
        app,
        [
            "model",
            "train",
            "credit",
            "--csv",
            str(path),
            "--target",
            "bad",
            "--time-column",
            "funded_at",
            "--exclude",
            "age",
        ],
    )
    assert result.exit_code == 1 and "a model needs at least 200 rows and 20 of each outcome" in result.output
    listed = json.loads(runner.invoke(app, ["model", "list", "--json"]).stdout)["models"]
    assert listed == []  # nothing was registered
    result = runner.invoke(app, ["model", "train", "propensity", "--from-store"])
    assert result.exit_code == 1 and "0 rows" in result.output
    assert runner.invoke(app, ["model", "train", "credit"]).exit_code == 1


def test_segments_list_shows_sizes(env: Path) -> None:  # noqa: F811
    leads = env / "leads.csv"
    leads.write_text(
        "source_channel,external_id,name,phone,loan_type,monthly_income,monthly_debt,consent_sms\n"
        "car_dealer,D1,张三,13800138001,auto,10000,5000,yes\n"
        "web_form,W1,李四,13800138002,mortgage,30000,1000,yes\n",
        encoding="utf-8",
    )
    assert runner.invoke(app, ["leads", "import", str(leads)]).exit_code == 0
    assert runner.invoke(app, ["run"]).exit_code == 0  # the views' one writer (reports never write)
    doc = json.loads(runner.invoke(app, ["segments", "list", "--json"]).stdout)
    sizes = {s["segment"]: s["leads"] for s in doc["segments"]}
    assert sizes["auto_interest"] == 1 and sizes["mortgage_interest"] == 1 and sizes["high_dti"] == 1
    assert sizes["renovation_cross_sell"] == 0
    table = runner.invoke(app, ["segments", "list"]).stdout
    assert "renovation_cross_sell" in table and "high_dti" in table


def test_retraining_on_a_rolling_window_keeps_the_older_version(env: Path) -> None:  # noqa: F811
    """``--window 180d`` trains on the newest 180 days of the file only; the first version stays
    listed (for comparison, and to go back to); a window without a time column is refused."""
    book = back_book(2000, datetime(2026, 3, 2, tzinfo=UTC))
    path = write_csv(env / "book.csv", book, BACK_BOOK_COLUMNS)
    args = ["model", "train", "credit", "--csv", str(path), "--target", "bad", "--time-column", "funded_at"]
    first = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    rolled = runner.invoke(app, [*args, "--window", "180d", "--json"])
    assert rolled.exit_code == 0, rolled.output
    doc = json.loads(rolled.stdout)
    assert doc["version"] == 2 and doc["training"]["rows"] < first["training"]["rows"]
    assert "the 180 days to" in doc["training"]["source"]
    listed = json.loads(runner.invoke(app, ["model", "list", "--json"]).stdout)["models"]
    assert [(m["version"], m["active"]) for m in listed] == [(1, False), (2, True)]
    no_time = runner.invoke(app, ["model", "train", "credit", "--csv", str(path), "--target", "bad", "--window", "90d"])
    assert no_time.exit_code != 0 and "needs a time column" in no_time.output
    bad = runner.invoke(app, [*args, "--window", "six months"])
    assert bad.exit_code == 2 and "not a number of days" in bad.output


def test_rolling_back_to_an_earlier_version_uses_its_file_again_and_says_so(env: Path) -> None:  # noqa: F811
    book = back_book(2000, datetime(2026, 3, 2, tzinfo=UTC))
    path = write_csv(env / "book.csv", book, BACK_BOOK_COLUMNS)
    args = ["model", "train", "credit", "--csv", str(path), "--target", "bad", "--time-column", "funded_at"]
    first = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert runner.invoke(app, [*args, "--window", "120d"]).exit_code == 0
    back = runner.invoke(app, ["model", "rollback", "credit", "--to", "1", "--json"])
    assert back.exit_code == 0, back.output
    doc = json.loads(back.stdout)
    assert (doc["version"], doc["restored_from"], doc["replaced"]) == (3, 1, 2)
    listed = json.loads(runner.invoke(app, ["model", "list", "--json"]).stdout)["models"]
    assert [(m["version"], m["active"], m["restored_from"]) for m in listed] == [
        (1, False, None),
        (2, False, None),
        (3, True, 1),
    ]
    assert listed[2]["sha256"] == first["sha256"] and listed[2]["auc"] == first["metrics"]["auc"]
    again = runner.invoke(app, ["model", "rollback", "credit", "--to", "3"])
    assert again.exit_code == 1 and "already" in again.stderr


def test_an_uplift_model_from_a_csv_experiment_serves_its_journey_and_explains_itself(env: Path) -> None:  # noqa: F811
    """``model train uplift --csv … --treatment`` for a published journey with a holdout: the
    Qini table against random targeting, the bands' rules, the list's uplift table; a prohibited
    column, a missing --journey or a journey without a holdout are refused with nothing registered."""
    from tests.unit.test_uplift import synthetic

    data = synthetic(3000)
    rows = [
        {**r, "applied": int(y), "messaged": int(t), "at": when.isoformat()}
        for r, y, t, when in zip(data.rows, data.y, data.treatment, data.times, strict=True)  # type: ignore[arg-type]
    ]
    path = write_csv(env / "experiment.csv", rows, ["segment", "income", "applied", "messaged", "at"])
    base = ["model", "train", "uplift", "--csv", str(path), "--target", "applied", "--time-column", "at"]
    missing = runner.invoke(app, [*base, "--treatment", "messaged"])
    assert missing.exit_code == 2 and "needs --journey" in missing.output
    no_holdout = runner.invoke(app, [*base, "--treatment", "messaged", "--journey", "seniors-advisor"])
    assert no_holdout.exit_code == 1 and "has no random holdout" in no_holdout.output
    untreated = runner.invoke(app, [*base, "--journey", "young-professionals"])
    assert untreated.exit_code == 1 and "who was messaged" in untreated.output
    assert json.loads(runner.invoke(app, ["model", "list", "--json"]).stdout)["models"] == []

    trained = runner.invoke(app, [*base, "--treatment", "messaged", "--journey", "young-professionals"])
    assert trained.exit_code == 0, trained.output
    assert "targeting by uplift vs at random" in trained.output and "persuadable from +2.0% lift" in trained.output
    [listed] = json.loads(runner.invoke(app, ["model", "list", "--json"]).stdout)["models"]
    assert listed["kind"] == "uplift" and listed["journey"] == "young-professionals" and listed["gain_top_30"] > 2
    shown = runner.invoke(app, ["model", "list"])
    assert "uplift models" in shown.output and "young-professionals" in shown.output
    result = runner.invoke(app, ["model", "evaluate", "uplift", "--csv", str(path), "--target", "applied",
                                 "--time-column", "at", "--treatment", "messaged", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.stdout)
    assert evaluated["metrics"]["qini"] > 0 and {b["band"] for b in evaluated["metrics"]["bands"]} >= {"persuadable"}
