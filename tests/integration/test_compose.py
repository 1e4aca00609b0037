"""docker-compose.yml cannot run here (no Docker); check that it says what it should."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_describes_the_live_system() -> None:
    services = compose()["services"]
    assert {"postgres", "nats", "mailpit", "db-init", "serve", "worker", "projections"} <= set(services)
    assert "-js" in services["nats"]["command"]
    assert services["db-init"]["command"] == ["huoke", "db", "init"] and services["db-init"]["restart"] == "no"
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["projections"]["command"] == ["huoke", "projections", "run"]
    assert services["bus"]["command"] == ["huoke", "bus", "run"]
    assert services["bus"]["depends_on"]["nats"]["condition"] == "service_healthy"
    assert services["webhooks"]["command"] == ["huoke", "webhooks", "run"]
    for name in ("serve", "worker", "projections", "bus", "webhooks"):
        service = services[name]
        assert service["depends_on"]["db-init"]["condition"] == "service_completed_successfully"
        assert service["restart"] == "unless-stopped" and "healthcheck" in service
        assert "models:/var/huoke/data/models" in service["volumes"]
        env = service["environment"]
        assert env["HUOKE_DATABASE_URL"].startswith("postgresql://huoke:${POSTGRES_PASSWORD:?")
        assert (env["HUOKE_SMTP_HOST"], env["HUOKE_SMTP_PORT"]) == ("mailpit", "1025")
        assert env["HUOKE_WORKER_ADVANCES_VIEWS"] == "false"  # the runner is the views' one writer
        assert env["HUOKE_NATS_URL"] == "nats://nats:4222"
    assert services["db-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (ROOT / services["worker"]["build"] / "Dockerfile").is_file()


def test_compose_has_no_secret_with_a_default() -> None:
    services = compose()["services"]
    secrets = {"HUOKE_UNSUBSCRIBE_SECRET", "HUOKE_SUPPRESSION_PEPPER", "HUOKE_SMTP_PASSWORD", "HUOKE_TWILIO_AUTH_TOKEN"}
    for name, service in services.items():
        assert not secrets & set(service.get("environment") or {}), name
    assert services["serve"]["env_file"] == [{"path": "huoke.env", "required": True}]
    example = (ROOT / "huoke.env.example").read_text()
    assert all(f"{s}=\n" in example for s in secrets)  # listed, and left empty


def test_every_huoke_variable_in_compose_is_a_real_setting() -> None:
    known = {f"HUOKE_{name.upper()}" for name in Settings.model_fields}
    assert set(compose()["services"]["worker"]["environment"]) <= known


def test_readme_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"HUOKE_{name.upper()}" in readme, name
