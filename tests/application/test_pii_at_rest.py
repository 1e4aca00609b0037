"""Personal data at rest: sealed per lead in the event store (SQLite and PostgreSQL), unreadable
for good once the lead is erased, while lending records stay; master keys rotate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from typer.testing import CliRunner

from engine.application.leads.app import Leads
from engine.application.leads.commands import LeadRef
from engine.application.leads.timeline import lead_timeline
from engine.application.reports import funnel_report
from engine.bootstrap import master_keys, vault_for
from engine.domain.leads.identity import LeadIdentity
from engine.domain.leads.lead import Lead
from engine.entrypoints.cli import app
from engine.eventstore import compression
from engine.eventstore.compression import StoredStateCompressor
from engine.eventstore.saving import save_batch
from engine.eventstore.vault import VaultKeyError, new_master_key
from tests.conftest import MakeEngine
from tests.helpers import cli_environment, lifecycle, young_pro

PERSONAL = ("Alex Chen1", "+8613800130001", "alex1@example.com", "25000")


def stored_bytes(engine: Any, app: str = "leads") -> bytes:
    """Every stored event of one store, as the database holds it (decompressed: compression
    hides nothing, so what is not sealed must show here)."""
    recorder: Any = getattr(engine, app).recorder
    datastore = recorder.datastore
    schema = getattr(datastore, "schema", "")
    table = f'"{schema}"."{recorder.events_table_name}"' if schema else recorder.events_table_name
    with datastore.transaction(commit=False) as c:
        c.execute(f"SELECT state FROM {table}")  # noqa: S608 - the store's own table
        rows = c.fetchall()
    states = (bytes(r["state"] if isinstance(r, dict) or hasattr(r, "keys") else r[0]) for r in rows)
    return b"".join(StoredStateCompressor().decompress(state) for state in states)


def test_personal_data_is_sealed_in_the_store(make_engine: MakeEngine, store: str) -> None:
    engine = make_engine()
    [out] = engine.leads.capture_leads([young_pro(1)])
    engine.run()
    raw = stored_bytes(engine)
    leaks = [raw[max(0, raw.find(p.encode()) - 300) : raw.find(p.encode()) + 40] for p in PERSONAL if p.encode() in raw]
    assert raw and not leaks
    assert b"_sealed" in raw and b"young_professional" in raw  # segments and stages stay readable
    sends = stored_bytes(engine, "deliveries")
    assert b"content_sha256" in sends and not [p for p in PERSONAL if p.encode() in sends]  # recipients sealed too
    lead = engine.leads.fresh_lead(out.lead_id)  # type: ignore[arg-type]
    assert (lead.contact["name"], lead.profile["monthly_income"]) == ("Alex Chen1", "25000")


def test_erasure_makes_every_personal_field_unreadable_and_keeps_the_lending_record(
    make_engine: MakeEngine, clock: Any, store: str
) -> None:
    engine = make_engine()
    [out, other] = engine.leads.capture_leads([young_pro(1), young_pro(2)])
    lead_id = out.lead_id
    t0 = clock.now()
    engine.leads.record_lifecycle(
        [lifecycle("application_submitted", young_pro(1), t0, application_id="A1", loan_type="consumer", amount="9")]
    )
    engine.run()
    erased = engine.leads.erase(lead_id, "customer request #4711", "dpo")  # type: ignore[arg-type]
    assert erased.erased and erased.contact == {}
    # A fresh process with the same stores and keys: the events load, the personal fields do not.
    again = make_engine()
    lead: Lead = again.leads.fresh_lead(lead_id)  # type: ignore[arg-type]
    assert (lead.contact, lead.profile, lead.interest) == ({}, {}, {})
    assert lead.stage.value == "applied" and lead.applications == {"A1": "submitted"}
    assert not any(lead.consents.values())  # opted out of everything
    doc = lead_timeline(again, lead_id)  # type: ignore[arg-type]
    assert doc["lead"]["erased"] and doc["lead"]["name"] is None
    assert any(t["event"] == "Lead.Erased" and t["why"] == "dpo: customer request #4711" for t in doc["timeline"])
    assert all("Alex" not in str(t) for t in doc["timeline"])
    assert again.leads.fresh_lead(other.lead_id).contact["name"] == "Alex Chen2"  # type: ignore[arg-type]
    # The same person re-imported, from the same source or another: refused.
    [same] = again.leads.capture_leads([young_pro(1)])
    assert same.error.endswith("not re-imported")  # on the suppression list, and erased
    [partner] = again.leads.capture_leads([young_pro(1, source={"channel": "car_dealer", "external_id": "NEW"})])
    assert partner.error  # known identity (erased) or suppression list
    funnel_report(again)  # reports still read every lead


def test_personal_fields_are_compressed_before_they_are_sealed_and_older_seals_still_open(
    make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine()
    [now] = engine.leads.capture_leads([young_pro(1)])
    with monkeypatch.context() as m:  # sealed as a huoke before compression sealed them
        m.setattr(compression, "compress", lambda data: data)
        [before] = engine.leads.capture_leads([young_pro(2)])
    sealed = []
    for lead_id in (now.lead_id, before.lead_id):
        assert lead_id is not None
        [captured, *_] = engine.leads.recorder.select_events(lead_id)
        sealed.append(len(json.loads(StoredStateCompressor().decompress(captured.state))["_sealed"]))
    assert sealed[0] < sealed[1] * 0.8  # compressed before sealing
    for out, n in ((now, 1), (before, 2)):
        lead = engine.leads.fresh_lead(out.lead_id)  # type: ignore[arg-type]
        assert (lead.contact["name"], lead.profile["monthly_income"]) == (f"Alex Chen{n}", "25000")


def test_a_sealed_field_cannot_be_moved_to_another_lead(make_engine: MakeEngine) -> None:
    engine = make_engine()
    [a, b] = engine.leads.capture_leads([young_pro(1), young_pro(2)])
    vault = engine.leads.vault
    blob = vault.seal(a.lead_id, b"secret", b"topic|" + str(a.lead_id).encode())  # type: ignore[union-attr,arg-type]
    with pytest.raises(VaultKeyError, match="does not open"):
        vault.open(b.lead_id, blob, b"topic|" + str(b.lead_id).encode())  # type: ignore[union-attr,arg-type]


def test_master_keys_rotate_and_a_missing_key_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli_environment(tmp_path, monkeypatch)
    runner = CliRunner()
    init = runner.invoke(app, ["db", "init"])
    key_file = tmp_path / "data-keys" / "master.key"  # beside the data folder, never in it
    assert init.exit_code == 0 and f"master key: {key_file}" in init.stdout.replace("\n", "")
    assert key_file.stat().st_mode & 0o777 == 0o600 and key_file.parent.stat().st_mode & 0o777 == 0o700
    assert not list((tmp_path / "data").glob("*.key"))
    (tmp_path / "leads.csv").write_text(
        "source_channel,external_id,name,phone\nweb_form,R1,Ann Rotated,+8613800138077\n", encoding="utf-8"
    )
    assert runner.invoke(app, ["leads", "import", str(tmp_path / "leads.csv")]).exit_code == 0
    old = key_file.read_text(encoding="utf-8").strip()
    new = new_master_key()
    monkeypatch.setenv("HUOKE_MASTER_KEY", new)
    locked = runner.invoke(app, ["leads", "show", "web_form:R1"])
    assert locked.exit_code == 1 and "not configured (HUOKE_MASTER_KEY / HUOKE_MASTER_KEY_OLD)" in locked.stderr
    monkeypatch.setenv("HUOKE_MASTER_KEY_OLD", old)
    rotated = runner.invoke(app, ["keys", "rotate", "--json"])
    assert rotated.exit_code == 0 and '"rewrapped": 2' in rotated.stdout  # the lead's key and the index key
    monkeypatch.delenv("HUOKE_MASTER_KEY_OLD")
    key_file.unlink()  # the old key is gone for good
    shown = runner.invoke(app, ["leads", "show", "web_form:R1"])
    assert shown.exit_code == 0 and "Ann Rotated" in shown.stdout
    monkeypatch.delenv("HUOKE_MASTER_KEY")
    with pytest.raises(VaultKeyError, match="no master key"):
        master_keys(settings_of(tmp_path))
    assert vault_for(settings_of(tmp_path, encrypt_pii=False)) is None


def test_a_master_key_left_in_the_data_folder_is_moved_out_by_db_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_environment(tmp_path, monkeypatch)
    runner = CliRunner()
    assert runner.invoke(app, ["db", "init"]).exit_code == 0
    key_file = tmp_path / "data-keys" / "master.key"
    key = key_file.read_text(encoding="utf-8")
    (tmp_path / "data" / "master.key").write_text(key, encoding="utf-8")  # where huoke kept it before
    key_file.unlink()
    refused = runner.invoke(app, ["leads", "show", "web_form:R1"])
    assert refused.exit_code == 1 and "still inside the data folder" in refused.stderr and "db init" in refused.stderr
    assert runner.invoke(app, ["db", "init"]).exit_code == 0
    assert key_file.read_text(encoding="utf-8") == key and not (tmp_path / "data" / "master.key").exists()


def settings_of(tmp_path: Path, **overrides: Any) -> Any:
    from engine.settings import Settings

    return Settings(data_dir=tmp_path / "data", **overrides)


def test_erase_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli_environment(tmp_path, monkeypatch)
    runner = CliRunner()
    assert runner.invoke(app, ["db", "init"]).exit_code == 0
    (tmp_path / "leads.csv").write_text(
        "source_channel,external_id,name,phone\nweb_form,E1,Erin Gone,+8613800138078\n", encoding="utf-8"
    )
    assert runner.invoke(app, ["leads", "import", str(tmp_path / "leads.csv")]).exit_code == 0
    done = runner.invoke(app, ["leads", "erase", "web_form:E1", "--reason", "GDPR art. 17 request", "--json"])
    assert done.exit_code == 0 and '"erased": true' in done.stdout and "credit records" in done.stdout
    shown = runner.invoke(app, ["leads", "show", "web_form:E1"])
    assert "erased" in shown.stdout and "Erin" not in shown.stdout
    again = runner.invoke(app, ["leads", "import", str(tmp_path / "leads.csv"), "--json"])
    assert "not re-imported" in again.stdout


def test_a_store_indexed_under_plain_keys_is_migrated_by_db_init(
    make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stores from before the identity index was the leads store's claims kept one LeadIdentity
    aggregate per key (the oldest under plain keys): they find their people after the migration
    ``huoke db init`` runs once, and a new capture of a known phone merges instead of duplicating."""

    def as_earlier_versions_saved(app: Any, aggregates: Any, tracking: Any = None, claims: Any = None) -> int:
        identities = [LeadIdentity(key=claim.name, lead_id=UUID(claim.value)) for claim in claims or ()]
        return save_batch(app, [*aggregates, *identities], tracking)

    with monkeypatch.context() as old_code:
        old_code.setattr(Leads, "_hashed_key", lambda self, key: key)  # the oldest stores' plain keys
        old_code.setattr("engine.application.leads.app.save_batch", as_earlier_versions_saved)
        old = make_engine()
        [known] = old.leads.capture_leads([young_pro(1)])
        assert b"phone:+8613800130001" in stored_bytes(old)
    upgraded = make_engine()
    assert upgraded.leads.find_lead(LeadRef(lead_id=known.lead_id)) == known.lead_id
    assert upgraded.leads.migrate_identities() == 3  # what huoke db init does once on an old store
    [again] = upgraded.leads.capture_leads([young_pro(1, source={"channel": "car_dealer", "external_id": "C1"})])
    assert again.lead_id == known.lead_id and not again.created
    assert upgraded.leads.find_lead(LeadRef(phone="+8613800130001")) == known.lead_id
    assert upgraded.leads.migrate_identities() == 0  # idempotent


def test_enrolments_stored_before_branches_named_their_lead_still_load(make_engine: MakeEngine, store: str) -> None:
    """Fixture: an Enrolment as stored before sealing (BranchTaken v1: values in the clear)."""
    import json

    from eventsourcing.persistence import StoredEvent

    from engine.domain.journeys.enrolment import Enrolment
    from tests.helpers import ROOT

    doc = json.loads((ROOT / "tests" / "fixtures" / "enrolment_v1_events.json").read_text(encoding="utf-8"))
    engine = make_engine()
    enrolment_id = UUID(doc["enrolment_id"])
    engine.journeys.recorder.insert_events(
        [StoredEvent(enrolment_id, e["originator_version"], e["topic"], e["state"].encode()) for e in doc["events"]]
    )
    events = list(engine.journeys.events.get(enrolment_id))  # type: ignore[attr-defined]
    [branch] = [e for e in events if isinstance(e, Enrolment.BranchTaken)]
    assert branch.lead_id is None and branch.values == {"credit_band": None}
    enrolment = engine.journeys.repository.get(enrolment_id)
    assert str(enrolment.lead_id) == doc["lead_id"] and enrolment.last_decision


def test_branch_values_are_sealed_with_the_leads_key(make_engine: MakeEngine) -> None:
    engine = make_engine()
    engine.leads.capture_leads([young_pro(1)])
    engine.run()
    raw = stored_bytes(engine, "journeys")
    assert b'"case":' in raw and b'"values":' not in raw  # the young-professional branch read credit_band


def test_views_are_built_without_opening_personal_data(
    make_engine: MakeEngine, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The views hold counts and states, never personal data: rebuilding them from the log opens
    no sealed field (no data key is even loaded), and they count the same as before."""
    engine = make_engine()
    engine.leads.capture_leads([young_pro(n) for n in range(1, 6)])
    engine.run()
    engine.refresh_views()
    before = funnel_report(engine)
    vault: Any = engine.leads.vault
    opened: list[UUID] = []
    monkeypatch.setattr(vault, "open", lambda lead_id, *a: opened.append(lead_id))
    monkeypatch.setattr(vault, "warm", opened.extend)
    for view in (engine.funnel, engine.index, engine.schedule, engine.screening):
        view.reset()  # type: ignore[attr-defined]
    engine.refresh_views()
    assert funnel_report(engine) == before and before["leads"] == 5
    assert opened == []


@pytest.mark.postgres
@pytest.mark.parametrize("store", ["postgres"])
def test_a_key_table_from_before_partitioning_is_moved_into_partitions_by_db_init(
    make_engine: MakeEngine, store: str
) -> None:
    import psycopg
    from psycopg import sql

    from tests.conftest import POSTGRES_URL, settings_of

    engine = make_engine()
    [out] = engine.leads.capture_leads([young_pro(1)])
    settings = settings_of(engine)
    schema = settings.postgres_env()["POSTGRES_SCHEMA"]  # type: ignore[index]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:  # the table as huoke made it before
        rows = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(schema, "lead_keys"))).fetchall()
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, "lead_keys")))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (lead_id TEXT PRIMARY KEY, kek TEXT NOT NULL, wrapped BYTEA, erased_at TEXT)"
            ).format(sql.Identifier(schema, "lead_keys"))
        )
        with conn.cursor() as c:
            c.executemany(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s)").format(sql.Identifier(schema, "lead_keys")), rows
            )
    again = make_engine()  # make_engine runs db init first
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        kind = conn.execute(
            "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = 'lead_keys'",
            (schema,),
        ).fetchone()
        assert kind == ("p",)
        assert conn.execute(
            sql.SQL("SELECT COUNT(*) FROM {}").format(sql.Identifier(schema, "lead_keys"))
        ).fetchone() == (len(rows),)
    assert again.leads.fresh_lead(out.lead_id).contact["name"] == "Alex Chen1"  # type: ignore[arg-type]
