"""An embedded run on both cores (``HUOKE_CORES=2``, the default): a ``huoke run`` with enough
waiting work lends most lead partitions to a helper process (``engine.bootstrap.helper``). What
it sends is what one process sends; a helper killed mid-send loses nothing and sends nothing
twice; a helper never outlives its engine process; a small run starts none.

Kills are timed by progress (messages in the outbox), not by the clock."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from engine.bootstrap.helper import helper_engine, with_helper
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
