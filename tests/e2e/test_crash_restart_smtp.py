"""SIGKILL the engine at random points while it sends through SMTP; after restarts the sink has
every expected message exactly once, by Message-ID. In-doubt sends (handed to SMTP, outcome not
recorded) are reconciled through a Mailpit-style search API, not blindly resent. Kills are timed
by messages received, so they land mid-send however fast the machine is."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.smtp_server import Sink
from tests.e2e.test_crash_restart import UNTIL, command, env_for, huoke, run_with_kills, write_leads


@pytest.mark.slow
def test_sigkill_while_sending_smtp_delivers_each_message_exactly_once(
    tmp_path: Path, mail_server: tuple[Sink, int, str]
) -> None:
    sink, port, api = mail_server
    leads = tmp_path / "leads.csv"
    write_leads(leads, 240)
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    huoke(reference, "db", "init")
    huoke(reference, "journeys", "publish")
    huoke(reference, "leads", "import", str(leads), "--json")
    huoke(reference, "run", "--until", UNTIL)
    expected = sorted(f"{p.stem}@lender.example" for p in (reference / "outbox" / "email").glob("*.eml"))
    assert len(expected) > 150

    smtp = {
        "HUOKE_EMAIL_TRANSPORT": "smtp",
        "HUOKE_SMTP_HOST": "127.0.0.1",
        "HUOKE_SMTP_PORT": str(port),
        "HUOKE_SMTP_RECONCILE_URL": api,
        "HUOKE_SMTP_CONNECTIONS": "2",
    }
    env = {**env_for(crashed), **smtp}
    for step in (("db", "init"), ("journeys", "publish"), ("leads", "import", str(leads), "--json")):
        subprocess.run(command(*step), env=env, check=True, capture_output=True)
    assert run_with_kills(env, lambda: len(sink.ids), seed=5, rounds=4) == 4
    final = subprocess.run(command("run", "--until", UNTIL), env=env, capture_output=True, text=True, check=False)
    assert final.returncode == 0, final.stderr
    counts = Counter(sink.ids)
    assert [mid for mid, n in counts.items() if n > 1] == [], "an e-mail arrived twice"
    assert sorted(counts) == expected, "an e-mail was lost"


@pytest.mark.slow
def test_without_a_reconcile_api_a_kill_resends_at_most_the_messages_on_the_wire(
    tmp_path: Path, mail_server: tuple[Sink, int, str]
) -> None:
    """Plain SMTP cannot be asked what arrived: an in-doubt message is resent (same Message-ID).
    Each message is marked just before it leaves and settled as soon as the server answers, so
    a kill leaves at most one message per connection in doubt: duplicates <= connections x kills."""
    sink, port, _ = mail_server
    leads = tmp_path / "leads.csv"
    write_leads(leads, 240)
    connections, rounds = 2, 4
    env = {
        **env_for(tmp_path / "crashed"),
        "HUOKE_EMAIL_TRANSPORT": "smtp",
        "HUOKE_SMTP_HOST": "127.0.0.1",
        "HUOKE_SMTP_PORT": str(port),
        "HUOKE_SMTP_CONNECTIONS": str(connections),
    }
    for step in (("db", "init"), ("journeys", "publish"), ("leads", "import", str(leads), "--json")):
        subprocess.run(command(*step), env=env, check=True, capture_output=True)
    assert run_with_kills(env, lambda: len(sink.ids), seed=9, rounds=rounds) == rounds
    final = subprocess.run(command("run", "--until", UNTIL), env=env, capture_output=True, text=True, check=False)
    assert final.returncode == 0, final.stderr
    counts = Counter(sink.ids)
    duplicates = sum(n - 1 for n in counts.values())
    print(f"{duplicates} duplicate(s) after {rounds} kills with {connections} connections")
    assert duplicates <= connections * rounds
    reference = tmp_path / "reference"
    huoke(reference, "db", "init")
    huoke(reference, "journeys", "publish")
    huoke(reference, "leads", "import", str(leads), "--json")
    huoke(reference, "run", "--until", UNTIL)
    expected = sorted(f"{p.stem}@lender.example" for p in (reference / "outbox" / "email").glob("*.eml"))
    assert sorted(counts) == expected, "an e-mail was lost"
