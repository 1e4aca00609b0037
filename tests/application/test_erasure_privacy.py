"""What an auditor checks after an erasure: no file under the data folder (write-ahead logs and
journals included), no PostgreSQL table and no raw page of the key table holds the person's
name, phone, e-mail, data key or wrapped data key — while another process still has the store
open — and the key cannot be unwrapped any more."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from engine.application.engine import Engine
from engine.application.erasure import erase_lead
from engine.application.events_out import wire_event
from engine.application.leads.commands import LeadRef
from engine.domain.shared.errors import HuokeError
from tests.conftest import POSTGRES_URL, MakeEngine, settings_of
from tests.helpers import young_pro

REASON = "customer request #4711 from Alex Chen1"


def secrets_of(engine: Engine, lead_id: UUID) -> dict[str, bytes]:
    """What must not survive: the person's contact, the data key and its wrapped form."""
    vault: Any = engine.leads.vault
    [(wrapped,)] = vault._execute("SELECT wrapped FROM {} WHERE lead_id = ?", (str(lead_id),))
    return {
        "name": b"Alex Chen1",
        "phone": b"+8613800130001",
        "e-mail": b"alex1@example.com",
        "income": b"25000",
        "data key": vault._dek(lead_id, create=False),
        "wrapped key": bytes(wrapped),
        "erase reason": REASON.encode(),
    }


def found_in(blob: bytes, secrets: dict[str, bytes]) -> list[str]:
    return [name for name, value in secrets.items() if value and value in blob]


def erase_with_another_process_reading(make_engine: MakeEngine) -> tuple[Engine, Engine, UUID, dict[str, bytes]]:
    engine = make_engine()
    [out, _] = engine.leads.capture_leads([young_pro(1), young_pro(2)])
    engine.run()
    lead_id = out.lead_id
    assert lead_id is not None
    reader = make_engine()  # another process with the store open, its key cache warm
    assert reader.leads.fresh_lead(lead_id).contact["name"] == "Alex Chen1"
    secrets = secrets_of(engine, lead_id)
    done = erase_lead(engine, lead_id, REASON, "dpo")
    assert done.lead.erased
    return engine, reader, lead_id, secrets


def test_nothing_of_an_erased_person_is_left_in_any_file_of_the_store(make_engine: MakeEngine, tmp_path: Path) -> None:
    engine, _reader, lead_id, secrets = erase_with_another_process_reading(make_engine)
    data = settings_of(engine).data_dir
    files = [p for p in data.rglob("*") if p.is_file()]
    assert any(p.name == "keys.db" for p in files) and any(p.name.endswith("-wal") for p in files)
    leaks = {str(p.relative_to(data)): found_in(p.read_bytes(), secrets) for p in files}
    assert not {k: v for k, v in leaks.items() if v}
    assert not list(data.glob("*.key"))  # the master key is not in the data folder
    assert not found_in(published(engine), secrets)  # nor on the bus or the webhooks
    assert_erased_everywhere(make_engine(), lead_id)


def published(engine: Engine) -> bytes:
    """Every event of the three logs as the bus relay and the webhooks publish it."""
    out = []
    for app in (engine.leads, engine.journeys, engine.deliveries):
        for note in app.recorder.select_notifications(start=None, limit=1_000_000):
            _, message = wire_event(app, note)
            out.append(message.model_dump_json(by_alias=True).encode())
    assert any(b'"Lead.Erased"' in m for m in out)
    return b"\n".join(out)


@pytest.mark.postgres
# The server to itself: VACUUM FULL keeps a dead tuple that a transaction open anywhere in the
# database might still see, so another test's long transaction kept the erased key's old version
# in the rewritten partition (it failed once so in a parallel run); alone, nothing holds it.
@pytest.mark.pg_heavy
@pytest.mark.parametrize("store", ["postgres"])
def test_nothing_of_an_erased_person_is_left_in_any_postgresql_table_or_page(
    make_engine: MakeEngine, pg_schema: str, store: str
) -> None:
    _, _reader, lead_id, secrets = erase_with_another_process_reading(make_engine)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", (pg_schema,)
            )
        ]
        assert "lead_keys_00" in tables
        leaks = {}
        for table in tables:
            rows = conn.execute(f'SELECT * FROM "{pg_schema}"."{table}"').fetchall()  # noqa: S608
            # Binary columns as stored, the others as text: a binary column shown as hex text
            # matched a secret of digits by chance ("25000" in a compressed event's hex, once).
            stored = b"\n".join(v if isinstance(v, bytes) else str(v).encode() for row in rows for v in row)
            hexed = stored.lower()
            leaks[table] = found_in(stored, secrets) + [
                name for name in ("wrapped key", "data key") if secrets[name].hex().encode() in hexed
            ]
        assert not {k: v for k, v in leaks.items() if v}
        # The raw pages of every key partition: no dead tuple still holds the wrapped key.
        with contextlib.suppress(psycopg.errors.UniqueViolation):  # another test made it at the same moment
            conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        pages = b""
        for table in (t for t in tables if t.startswith("lead_keys_")):
            name = f'"{pg_schema}"."{table}"'
            size = conn.execute("SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::int", (name,))
            blocks = size.fetchone()
            for block in range(int(blocks[0]) if blocks else 0):
                page = conn.execute("SELECT get_raw_page(%s, %s)", (name, block)).fetchone()
                pages += bytes(page[0]) if page else b""
        assert pages and not found_in(pages, {k: secrets[k] for k in ("wrapped key", "data key")})
    assert_erased_everywhere(make_engine(), lead_id)


def assert_erased_everywhere(engine: Engine, lead_id: UUID) -> None:
    """A process started after the erasure: the key does not unwrap, look-ups by contact fail,
    the lead reads as erased (not as an error), the reason is kept for the lender."""
    vault: Any = engine.leads.vault
    assert vault._dek(lead_id, create=False) is None
    lead = engine.leads.fresh_lead(lead_id)
    assert lead.erased and lead.contact == {} and (lead.offer is None or lead.offer.monthly_payment == "")
    for ref in (LeadRef(phone="+8613800130001"), LeadRef(email="alex1@example.com")):
        with pytest.raises(HuokeError):
            engine.leads.find_lead(ref)
    assert engine.leads.find_lead(LeadRef(source_channel="web_form", external_id="W1")) == lead_id
    erased = [e for e in engine.leads.repository.event_store.get(lead_id) if type(e).__name__ == "Erased"]
    assert [e.reason for e in erased] == [REASON]  # type: ignore[attr-defined]  # sealed at rest, readable by huoke


@pytest.mark.postgres
@pytest.mark.pg_heavy
@pytest.mark.parametrize("store", ["postgres"])
def test_an_erasure_waits_for_a_transaction_that_could_still_see_the_key(
    make_engine: MakeEngine, pg_schema: str, store: str
) -> None:
    """A report open in another session (a repeatable-read transaction that began before the
    erasure) made VACUUM FULL keep the deleted key's old version in the rewritten partition: the
    erasure now waits for such a transaction to end, then scrubs."""
    import threading
    import time

    engine = make_engine()
    [out] = engine.leads.capture_leads([young_pro(1)])
    lead_id = out.lead_id
    assert lead_id is not None
    secrets = secrets_of(engine, lead_id)
    opened, ended = threading.Event(), threading.Event()

    def long_report() -> None:
        with psycopg.connect(POSTGRES_URL) as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            conn.execute("SELECT count(*) FROM pg_class").fetchone()  # its snapshot is taken
            opened.set()
            time.sleep(1.5)
            conn.rollback()
            ended.set()

    reader = threading.Thread(target=long_report)
    reader.start()
    assert opened.wait(10)
    erase_lead(engine, lead_id, REASON, "dpo")
    assert ended.is_set()  # the scrub waited for the report to end
    reader.join()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE 'lead\\_keys\\_%%'", (pg_schema,)
        )]  # fmt: skip
        pages = b""
        for table in tables:
            name = f'"{pg_schema}"."{table}"'
            [blocks] = conn.execute(
                "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::int", (name,)
            ).fetchone() or [0]
            for block in range(int(blocks)):
                page = conn.execute("SELECT get_raw_page(%s, %s)", (name, block)).fetchone()
                pages += bytes(page[0]) if page else b""
    assert pages and not found_in(pages, {k: secrets[k] for k in ("wrapped key", "data key")})
