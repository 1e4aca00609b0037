"""A run's report counts in the helper's part of the run (``RunReport.add``)."""

from __future__ import annotations

from dataclasses import fields

from engine.application.engine import RunReport


def test_a_run_report_counts_in_every_count_of_another_part_of_the_run() -> None:
    """Every count is added, the dispatch's too, so a count added to the report later is not
    left out; whether the run stopped at its budget stays the engine process's to say."""
    mine, theirs = RunReport(), RunReport(unfinished=True)
    counts = [f.name for f in fields(RunReport) if f.name not in ("dispatch", "unfinished")]
    sent = [f.name for f in fields(mine.dispatch)]
    for i, name in enumerate(counts, 1):
        setattr(mine, name, i)
        setattr(theirs, name, 10 * i)
    for i, name in enumerate(sent, 1):
        setattr(mine.dispatch, name, i)
        setattr(theirs.dispatch, name, 100 * i)
    mine.add(theirs)
    assert [getattr(mine, name) for name in counts] == [11 * i for i in range(1, len(counts) + 1)]
    assert [getattr(mine.dispatch, name) for name in sent] == [101 * i for i in range(1, len(sent) + 1)]
    assert len(counts) == 5 and mine.as_dict()["sent"] == mine.dispatch.sent
    assert mine.unfinished is False
