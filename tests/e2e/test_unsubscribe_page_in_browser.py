"""The unsubscribe page as a browser shows it: headless Chromium loads it from `huoke serve`'s app."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import uvicorn

from engine.adapters.clock import VirtualClock
from engine.application.delivery.links import LinkKeys
from engine.entrypoints.http import create_app
from tests.conftest import MakeEngine
from tests.e2e.smtp_server import free_port
from tests.helpers import young_pro

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed here")


@pytest.fixture
def served(make_engine: MakeEngine, clock: VirtualClock) -> Iterator[tuple[str, str]]:
    engine = make_engine(settings={"unsubscribe_secret": "s3cret"})
    [out] = engine.leads.capture_leads([young_pro(1, captured_at=clock.now())])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(engine, LinkKeys("s3cret")), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
    path = urlparse(engine.deliveries.unsubscribe_url(out.lead_id, "sms")).path  # type: ignore[arg-type]
    yield f"http://127.0.0.1:{port}", path
    server.should_exit = True
    thread.join(5)


def test_the_confirmation_page_renders_a_bilingual_button(served: tuple[str, str], tmp_path: Path) -> None:
    base, path = served
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",  # type: ignore[list-item]
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            base + path,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "Stop marketing text messages from us? / 不再接收营销信息？" in dom
    assert '<form method="post">' in dom and "Unsubscribe / 退订</button>" in dom
