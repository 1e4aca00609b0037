"""docker-compose.yml cannot run here (no Docker); check that it says what it should."""

from __future__ import annotations

from pathlib import Path

import yaml

from engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_compose_has_the_distributed_deployment() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "nats", "mailpit", "huoke"} <= set(services)
    assert "-js" in services["nats"]["command"]
    env = services["huoke"]["environment"]
    assert env["HUOKE_DATABASE_URL"].startswith("postgresql://huoke:huoke@postgres:5432/huoke")
    assert (env["HUOKE_SMTP_HOST"], env["HUOKE_SMTP_PORT"]) == ("mailpit", "1025")
    assert "1025:1025" in services["mailpit"]["ports"]
    assert services["huoke"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (ROOT / services["huoke"]["build"] / "Dockerfile").is_file()


def test_every_huoke_variable_in_compose_is_a_real_setting() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    known = {f"HUOKE_{name.upper()}" for name in Settings.model_fields}
    assert set(compose["services"]["huoke"]["environment"]) <= known


def test_readme_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"HUOKE_{name.upper()}" in readme, name
