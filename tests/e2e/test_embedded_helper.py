"""An embedded run on both cores (``HUOKE_CORES=2``, the default): a ``huoke run`` with enough
waiting work lends most lead partitions to a helper process (``engine.bootstrap.helper``). What
it sends is what one process sends; a helper killed mid-send loses nothing and sends nothing
twice; a helper never outlives its engine process; a small run starts none.

Kills are timed by progress (messages in the outbox), not by the clock."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from engine.application.erasure import erase_lead
from engine.application.leads.app import by_person, capture_keys, lead_id_for
from engine.bootstrap.helper import HelperFailedError, helper_engine, with_helper
from engine.bootstrap.importing import IMPORT_HELPER_FROM
from engine.eventstore.saving import ShareCache
from tests.conftest import MakeEngine, settings_of
from tests.e2e.test_crash_restart import UNTIL, command, env_for, huoke, outbox_count, sent_ids, write_leads
from tests.helpers import young_pro


def helper_of(pid: int) -> int | None:
    """The helper process among ``pid``'s children (multiprocessing's spawned interpreter; its
    resource tracker is the other child)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            return int(child)
    return None


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stores(tmp_path: Path, leads: Path, *names: str) -> list[Path]:
    folders = [tmp_path / name for name in names]
    for folder in folders:
        huoke(folder, "db", "init")
        huoke(folder, "journeys", "publish")
        huoke(folder, "leads", "import", str(leads), "--json")
    return folders


@pytest.mark.slow
def test_a_helper_killed_mid_send_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    leads = tmp_path / "leads.csv"
    write_leads(leads, 240)
    reference, crashed = stores(tmp_path, leads, "reference", "crashed")
    # The reference runs as one process: a run on both cores sends exactly what it sends.
    done = subprocess.run(
        command("run", "--until", UNTIL), env={**env_for(reference), "HUOKE_CORES": "1"},
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = sent_ids(reference)
    assert len(expected) == len(set(expected)) > 400

    rng = random.Random(5)
    env = {**env_for(crashed), "HUOKE_HELPER_FROM": "1"}  # these 240 leads are worth a helper
    helpers_killed = 0
    for _ in range(5):
        target = outbox_count(crashed) + rng.randint(3, 40)
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(command("run", "--until", UNTIL), env=env, stdout=subprocess.DEVNULL, stderr=errors)
            helper = None
            while proc.poll() is None and (helper is None or outbox_count(crashed) < target):
                helper = helper or helper_of(proc.pid)
                time.sleep(0.005)
            if proc.poll() is not None:
                errors.seek(0)
                assert proc.returncode == 0, errors.read().decode()
                break
            assert helper is not None
            os.kill(helper, signal.SIGKILL)
            assert proc.wait(timeout=60) == 1  # the run stops, and says why
            errors.seek(0)
            said = errors.read().decode()
            assert "the helper process" in said and "run again" in said, said
            helpers_killed += 1
    assert helpers_killed == 5  # every kill landed mid-send
    huoke(crashed, "run", "--until", UNTIL)
    got = sent_ids(crashed)
    assert len(got) == len(set(got)), "a message was sent twice"
    assert sorted(got) == sorted(expected), "a message was lost"


@pytest.mark.slow
def test_the_helper_dies_with_its_engine_process(tmp_path: Path) -> None:
    """A run started after a crash must never find the old helper still working its partitions."""
    leads = tmp_path / "leads.csv"
    write_leads(leads, 120)
    (folder,) = stores(tmp_path, leads, "store")
    env = {**env_for(folder), "HUOKE_HELPER_FROM": "1"}
    proc = subprocess.Popen(command("run", "--until", UNTIL), env=env, stdout=subprocess.DEVNULL)
    helper = None
    while proc.poll() is None and (helper is None or outbox_count(folder) < 5):
        helper = helper or helper_of(proc.pid)
        time.sleep(0.005)
    assert helper is not None and proc.poll() is None, "the run ended before it was killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while alive(helper) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(helper)


def test_a_run_with_little_waiting_stays_in_one_process(make_engine: MakeEngine) -> None:
    """Below HUOKE_HELPER_FROM waiting lead events and timers, a step's round trip between two
    processes costs more than the second core saves: no helper is started."""
    engine = make_engine()
    settings = settings_of(engine)
    with_helper(engine, settings.model_copy(update={"helper_from": 5}), engine.clock)
    assert engine.helper is not None
    engine.leads.capture_leads([young_pro(i) for i in range(3)])
    report = engine.run()
    assert report.requested and engine.helper._process is None  # type: ignore[attr-defined]
    assert engine.parts.everything


def share_cache(engine: Any) -> ShareCache:
    cache = engine.leads.repository.cache
    assert isinstance(cache, ShareCache)
    return cache


def test_each_lead_is_cached_in_one_process(make_engine: MakeEngine) -> None:
    """With a helper, the engine process caches the leads of the partitions it keeps and the
    helper those of its share (each also keeps the last few of the other's it used): a lead
    cached twice would double the memory a big store takes."""
    engine = make_engine()
    settings = settings_of(engine)
    with_helper(engine, settings, engine.clock)
    helper = engine.helper
    assert helper is not None
    theirs = helper_engine(settings, helper.parts, engine.clock)
    try:
        leads = engine.leads.capture_leads([young_pro(i) for i in range(40)])
        ids = [lead.lead_id for lead in leads if lead.lead_id is not None]
        engine.run()
        theirs.leads.current(ids)
        here, there = share_cache(engine), share_cache(theirs)
        ours_here, ours_there = {i for i in ids if here.ours(i)}, {i for i in ids if there.ours(i)}
        assert ours_here and ours_there and not ours_here & ours_there and ours_here | ours_there == set(ids)
        assert ours_there == {i for i in ids if helper.parts.owns(i)}
        assert set(here.cache) == ours_here and set(there.cache) == ours_there
    finally:
        theirs.close()


def test_a_batch_is_grouped_by_the_person_its_rows_name() -> None:
    """Rows sharing a source id, phone or e-mail, directly or through another row, are one person;
    each group keeps its rows' order, and groups come in the order of their first row."""
    a = young_pro(1)
    b = young_pro(2)
    a_again = young_pro(3, contact={**a.contact, "email": "a.new@example.com"}, source={"channel": "partner"})
    joins = young_pro(4, contact={"phone": b.contact["phone"], "email": "a.new@example.com", "language": "en"})
    loner = young_pro(5)
    assert by_person([a, b, loner, a_again, joins]) == [[0, 1, 3, 4], [2]]
    assert by_person([a, loner, b]) == [[0], [1], [2]]


def person_and_outcome(engine: Any, outcome: Any) -> tuple[Any, ...]:
    """What a capture's outcome said and what the lead it names holds (not the clock's moments)."""
    if outcome.lead_id is None:
        return (outcome.error,)
    lead = engine.leads.fresh_lead(outcome.lead_id)
    return (
        outcome.lead_id, outcome.created, outcome.changed, outcome.conflicts, lead.version, lead.contact,
        lead.profile, lead.interest, sorted(lead.consents.items()), lead.conflicts, lead.segments, lead.source,
    )  # fmt: skip


def test_a_batch_captured_on_both_cores_is_captured_as_one_process_captures_it(
    make_engine: MakeEngine, tmp_path: Path
) -> None:
    """With a helper up, ``Engine.capture_leads`` captures a big batch's people of the helper's
    partitions there and the others here, at once: new people, people captured by an earlier
    batch coming back with another income (a conflict kept for review), a partner's touch of a
    known person, two rows joined only through a third, and an erased person (refused) come out
    exactly as one process captures them."""
    one = make_engine(settings={"data_dir": tmp_path / "one", "outbox_dir": tmp_path / "one-outbox"})
    engine = make_engine()
    with_helper(engine, settings_of(engine), engine.clock, start=True)
    helper = engine.helper
    assert helper is not None
    deadline = time.monotonic() + 60
    while not helper.idle():  # up: its stores open (a second or so)
        assert time.monotonic() < deadline, "the helper did not start"
        time.sleep(0.02)
    steps: list[str] = []
    begin = helper.begin

    def begun(step: str, *args: Any) -> None:
        steps.append(step)
        begin(step, *args)

    helper.begin = begun  # type: ignore[method-assign]

    first = [young_pro(i) for i in range(120)]
    returning = [young_pro(i, profile={**young_pro(i).profile, "monthly_income": "31000"}) for i in range(0, 120, 7)]
    partner = [
        young_pro(
            1000 + i,
            source={"channel": "partner", "external_id": f"P{i}"},
            contact={**young_pro(i).contact},
            profile={**young_pro(i).profile, "monthly_income": "40000"},
        )
        for i in range(130, 150)
    ]
    a = young_pro(2000, contact={"phone": "+8613900000001", "language": "en"})
    b = young_pro(2001, contact={"email": "b2001@example.com", "language": "en"})
    joins = young_pro(2002, contact={"phone": "+8613900000001", "email": "b2001@example.com", "language": "en"})
    erased = young_pro(3000)
    second = [*[young_pro(i) for i in range(120, 200)], *returning, *partner, a, b, joins, erased]
    for store in (one, engine):
        [done] = store.leads.capture_leads([erased])
        assert done.lead_id is not None
        erase_lead(store, done.lead_id, "asked to be forgotten", "test")

    expected = [one.leads.capture_leads(batch) for batch in (first, second)]
    got = [engine.capture_leads(batch) for batch in (first, second)]
    assert steps == ["capture", "capture"]  # the helper captured part of each batch
    for want, have in zip(expected, got, strict=True):
        assert [person_and_outcome(one, o) for o in want] == [person_and_outcome(engine, o) for o in have]
    assert any(o.conflicts for o in got[1]) and any(o.error for o in got[1]) and any(o.created for o in got[1])
    assert sum(1 for o in got[1] if o.lead_id is not None and not o.created) >= len(returning) + 2


@pytest.mark.slow
def test_a_big_lead_file_imported_on_both_cores_gives_what_one_process_gives(tmp_path: Path) -> None:
    """``huoke leads import`` of a file of ``IMPORT_HELPER_FROM`` rows or more captures on both
    cores once its helper is up; its report (each row's lead, created or updated) and the leads
    are those of the same import on one process. A tenth of the rows are a partner's second
    touch of a person named earlier in the file."""
    leads = tmp_path / "leads.csv"
    write_leads(leads, IMPORT_HELPER_FROM + 400)
    with leads.open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    for n, row in enumerate(rows[1 : len(rows) : 10]):
        rows.append(["car_dealer", f"P{n}", *row[2:6], "1975", *row[7:]])  # another birth year: kept for review
    with leads.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    reports = {}
    for cores in ("1", "2"):
        folder = tmp_path / f"cores-{cores}"
        huoke(folder, "db", "init")
        done = subprocess.run(
            command("leads", "import", str(leads), "--json"), env={**env_for(folder), "HUOKE_CORES": cores},
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        reports[cores] = json.loads(done.stdout)
    assert reports["1"] == reports["2"]
    assert reports["2"]["created"] == IMPORT_HELPER_FROM + 400 and reports["2"]["updated"] > 200


def running(pid: int) -> bool:
    """Whether ``pid`` is on a core now (not sleeping, say on its pipe)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "R"
    except OSError:
        return False


def captured(folder: Path) -> list[str]:
    """The leads captured so far (their ``Captured`` events' ids), read beside the writers."""
    path = folder / "data" / "leads.db"
    if not path.exists():
        return []
    with sqlite3.connect(path, timeout=30) as c:
        try:
            rows = c.execute("SELECT originator_id FROM stored_events WHERE topic LIKE '%:Lead.Captured'").fetchall()
        except sqlite3.OperationalError:
            return []
    return [str(row[0]) for row in rows]


@pytest.mark.slow
def test_a_helper_killed_mid_import_loses_no_row_and_captures_none_twice(tmp_path: Path) -> None:
    """SIGKILL the helper while a big import captures on both cores: killed in its step, the
    import stops with a message saying to import again; killed between steps, the engine
    process goes on alone. Either way, once the file is imported again every row's person is
    captured once, as one process captures them."""
    leads = tmp_path / "leads.csv"
    n = IMPORT_HELPER_FROM * 3
    write_leads(leads, n)
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    for folder in (reference, crashed):
        huoke(folder, "db", "init")
    huoke(reference, "leads", "import", str(leads), "--json")
    proc = subprocess.Popen(command("leads", "import", str(leads), "--json"), env=env_for(crashed),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    helper = None
    # Killed while it captures its half of a batch (running, not waiting for its next step), once
    # two thirds are in: by then it is up (the first batches go alone while it starts).
    while proc.poll() is None and (helper is None or len(captured(crashed)) < n * 2 // 3 or not running(helper)):
        helper = helper or helper_of(proc.pid)
        time.sleep(0.002)
    assert helper is not None and proc.poll() is None, "the import ended before its helper was killed"
    os.kill(helper, signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # it had answered its step: the engine process captured the rest alone
        assert json.loads(out)["created"] + json.loads(out)["unchanged"] == n
    else:  # killed in its step: the import stops and says what to do
        assert proc.returncode == 1 and "the helper process" in err and "Import the rows again" in err
        assert 0 < len(captured(crashed)) < n  # some rows were captured, not all
    again = json.loads(huoke(crashed, "leads", "import", str(leads), "--json").stdout)
    assert again["created"] + again["unchanged"] == n and not again["errors"] and again["unchanged"]
    # Each person is the lead one process makes of them, captured once.
    got, want = captured(crashed), captured(reference)
    assert len(got) == len(set(got)) == n and sorted(got) == sorted(want)


def test_a_helper_lost_in_its_capture_step_stops_the_batch_and_the_batch_again_captures_all_once(
    make_engine: MakeEngine,
) -> None:
    """The helper is killed the moment it is given its half of a batch: the engine process's own
    half is captured, ``capture_leads`` raises with what to do, and the batch captured again
    (the helper gone: by the engine process alone) captures the rest, nobody twice."""
    engine = make_engine()
    with_helper(engine, settings_of(engine), engine.clock, start=True)
    helper = engine.helper
    assert helper is not None
    deadline = time.monotonic() + 60
    while not helper.idle():
        assert time.monotonic() < deadline, "the helper did not start"
        time.sleep(0.02)
    begin = helper.begin

    def begun_then_killed(step: str, *args: Any) -> None:
        begin(step, *args)
        os.kill(helper._process.pid, signal.SIGKILL)  # type: ignore[attr-defined]

    helper.begin = begun_then_killed  # type: ignore[method-assign]
    batch = [young_pro(i) for i in range(200)]
    with pytest.raises(HelperFailedError, match="Import the rows again"):
        engine.capture_leads(batch)
    helper.begin = begin  # type: ignore[method-assign]
    ids = {lead_id_for(capture_keys(c)[0]) for c in batch}
    assert 0 < len(engine.leads.current(ids)) < len(batch)  # the engine process's half only
    assert not helper.idle()  # gone: the batch again is captured here alone
    outcomes = engine.capture_leads(batch)
    assert not any(o.error for o in outcomes)
    assert {o.lead_id for o in outcomes} == ids and len(engine.leads.current(ids)) == len(batch)
    assert sum(o.created for o in outcomes) + sum(not o.created and not o.changed for o in outcomes) == len(batch)


@pytest.mark.slow
def test_the_reports_of_a_lent_run_are_those_of_one_process(tmp_path: Path) -> None:
    """A run lent to the helper records what the same run on one process records, as the
    reports read it: the funnel, engagement and the daily figures (each event counted once
    whichever process recorded it, and the views kept by the engine process alone)."""
    leads = tmp_path / "leads.csv"
    write_leads(leads, 240)
    reference, lent = stores(tmp_path, leads, "reference", "lent")
    for folder, env in ((reference, {"HUOKE_CORES": "1"}), (lent, {"HUOKE_HELPER_FROM": "1"})):
        done = subprocess.run(command("run", "--until", UNTIL), env={**env_for(folder), **env},
                              capture_output=True, text=True, timeout=180, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
    for report in ("funnel", "engagement", "daily"):
        one, two = (json.loads(huoke(f, "report", report, "--json").stdout) for f in (reference, lent))
        one.pop("generated_at", None), two.pop("generated_at", None)
        assert one == two, report
