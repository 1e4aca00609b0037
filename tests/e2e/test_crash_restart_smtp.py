"""SIGKILL the engine at random points while it sends through SMTP; after restarts the sink has
every expected message exactly once, by Message-ID. In-doubt sends (handed to SMTP, outcome not
recorded) are reconciled through a Mailpit-style search API, not blindly resent."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.e2e.smtp_server import free_port
from tests.e2e.test_crash_restart import UNTIL, command, env_for, huoke, write_leads


class Sink:
    """An SMTP server that keeps the Message-ID of everything it accepted."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)  # type: ignore[arg-type]
        with self.lock:
            self.ids.append(str(message["Message-ID"]).strip().strip("<>"))
        return "250 OK"


def search_api(sink: Sink) -> type[BaseHTTPRequestHandler]:
    class MailpitSearch(BaseHTTPRequestHandler):
        """GET /api/v1/search?query=message-id:<id> as Mailpit answers it (count only)."""

        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)["query"][0]
            wanted = query.removeprefix("message-id:")
            with sink.lock:
                count = sink.ids.count(wanted)
            body = json.dumps({"messages_count": count, "total": len(sink.ids)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return MailpitSearch


@pytest.fixture
def mail_server() -> Iterator[tuple[Sink, int, str]]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    api = ThreadingHTTPServer(("127.0.0.1", 0), search_api(sink))
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    yield sink, port, f"http://127.0.0.1:{api.server_address[1]}"
    api.shutdown()
    api.server_close()
    controller.stop()


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
    rng = random.Random(5)
    kills = 0
    for _ in range(12):
        proc = subprocess.Popen(
            command("run", "--until", UNTIL), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.8, 2.5))
        if proc.poll() is not None:
            assert proc.returncode == 0
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills >= 1
    final = subprocess.run(command("run", "--until", UNTIL), env=env, capture_output=True, text=True, check=False)
    assert final.returncode == 0, final.stderr
    counts = Counter(sink.ids)
    assert [mid for mid, n in counts.items() if n > 1] == [], "an e-mail arrived twice"
    assert sorted(counts) == expected, "an e-mail was lost"
