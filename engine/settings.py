"""All settings, from environment variables prefixed HUOKE_ (read by bootstrap and entrypoints only)."""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlparse

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.eventstore import POSTGRES_MODULE

#: Secrets shorter than this are refused by the commands that serve or send.
MIN_SECRET = 32
#: Values that appeared in huoke's docs or defaults: never a secret.
WEAK_SECRETS = frozenset({"change-me", "changeme", "huoke-suppression", "secret", "s3cret", "password", "huoke"})
#: Least estimated randomness of a secret, in bits (a 32-character random token has about 150;
#: 40 repetitions of one letter has none).
MIN_SECRET_BITS = 96
#: How to make a good one (shown with the problems).
KEY_RECIPE = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def estimated_bits(secret: str) -> float:
    """A rough upper bound of a secret's randomness: its length times the Shannon entropy of its
    own characters (``aaaa…`` has none; a random token about 4.5-6 bits a character)."""
    counts = Counter(secret)
    return -len(secret) * sum(n / len(secret) * math.log2(n / len(secret)) for n in counts.values())


class Settings(BaseSettings):
    """huoke's configuration; every field is HUOKE_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="HUOKE_", extra="ignore")

    database_url: str = Field(
        "",
        description="empty: SQLite files in HUOKE_DATA_DIR; or postgresql://user:pw@host:5432/db?schema=huoke",
    )
    pg_connections: int = Field(
        20,
        ge=10,
        description="most PostgreSQL connections one process opens: its stores share one pool, 2 kept open "
        "(the projections runner holds one per runner to listen)",
    )
    data_dir: Path = Field(Path("var/data"), description="folder of the SQLite files (embedded mode)")
    journeys_dir: Path = Field(Path("journeys"), description="journey YAML files")
    config_dir: Path | None = Field(
        None, description="segments, products and contact policy YAML (default: config/ in HUOKE_JOURNEYS_DIR)"
    )
    templates_dir: Path = Field(Path("templates"), description="Jinja2 message templates")
    outbox_dir: Path = Field(Path("var/outbox"), description="where the outbox transport writes .eml and sms.jsonl")
    email_transport: Literal["outbox", "smtp"] = Field("outbox", description="outbox (files) or smtp")
    smtp_host: str = Field("127.0.0.1", description="SMTP server host")
    smtp_port: int = Field(1025, description="SMTP server port")
    smtp_tls: Literal["none", "starttls", "tls"] = Field("none", description="none, starttls or tls")
    smtp_username: str = Field("", description="SMTP user (empty: no AUTH)")
    smtp_password: SecretStr = Field(SecretStr(""), description="SMTP password")
    smtp_timeout: float = Field(30.0, description="seconds before an SMTP command times out")
    smtp_connections: int = Field(4, description="concurrent SMTP connections (each reused for many messages)")
    smtp_reconcile_url: str = Field(
        "", description="Mailpit-style search API to look up in-doubt e-mails by Message-ID after a crash"
    )
    email_rate: float = Field(0.0, description="at most this many e-mails a second (0: no limit)")
    retry_hours: float = Field(
        24.0, description="hours a message that could not be sent (server down, 4xx) is retried before it fails"
    )
    in_doubt: Literal["resend", "hold"] = Field(
        "resend",
        description="a message handed to a channel just before a crash: resend (same Message-ID / idempotency "
        "token, receivers drop repeats) or hold (never risk a duplicate: recorded as held for review)",
    )
    sender_name: str = Field("Huoke Lending", description="display name of the sender")
    sender_email: str = Field("marketing@lender.example", description="From address")
    sender_postal_address: str = Field(
        "1 Finance Street, Xicheng District, Beijing 100033, China",
        description="postal address printed in every marketing e-mail",
    )
    unsubscribe_url: str = Field(
        "https://lender.example/unsubscribe", description="base of the signed one-click unsubscribe link"
    )
    email_double_opt_in: bool = Field(
        False, description="e-mail consent starts only when the lead confirms by a link (double opt-in)"
    )
    master_key: SecretStr = Field(
        SecretStr(""), description="key that wraps each lead's data key (32 bytes, URL-safe base64: huoke keys new)"
    )
    master_key_file: Path | None = Field(
        None,
        description="file holding the master key instead (default: <data folder>-keys/master.key, beside the "
        "data folder, never in it: keep it out of the data backups)",
    )
    master_key_old: SecretStr = Field(
        SecretStr(""), description="earlier master keys, comma-separated, until huoke keys rotate has rewrapped"
    )
    encrypt_pii: bool = Field(True, description="seal each lead's personal data with its own key (false: plain)")
    suppression_pepper: SecretStr = Field(
        SecretStr(""), description="key of the hashed suppression list: 32+ random characters, keep it stable"
    )
    unsubscribe_secret: SecretStr = Field(
        SecretStr(""), description="key that signs unsubscribe and confirmation links: 32+ random characters"
    )
    unsubscribe_old_secrets: SecretStr = Field(
        SecretStr(""), description="earlier link keys, comma-separated: links they signed keep working (rotation)"
    )
    sms_transport: Literal["outbox", "twilio"] = Field("outbox", description="outbox (sms.jsonl) or twilio")
    twilio_account_sid: str = Field("", description="Twilio account SID")
    twilio_auth_token: SecretStr = Field(SecretStr(""), description="Twilio auth token")
    twilio_from: str = Field("", description="the sending number or messaging service")
    twilio_base_url: str = Field("https://api.twilio.com", description="Twilio API base URL")
    sms_rate: float = Field(0.0, description="at most this many SMS a second (0: no limit)")
    public_url: str = Field(
        "", description="where huoke serve is reachable (SMS status callbacks; tracked links /l/<code> point there)"
    )
    track_links: bool = Field(
        True, description="rewrite message links to tracked links on HUOKE_PUBLIC_URL (needs it set) and record clicks"
    )
    track_opens: bool = Field(
        False, description="add an open pixel to HTML e-mails (opens are reported apart, and are unreliable)"
    )
    nats_url: str = Field(
        "", description="NATS with JetStream for the event bus, e.g. nats://127.0.0.1:4222 (empty: no bus)"
    )
    bus_prefix: str = Field(
        "huoke", description="first token of every bus subject and stream name (one per installation)"
    )
    outbound_allow: str = Field(
        "",
        description="internal hosts or networks webhook subscriptions may reach, comma-separated (10.0.0.0/8, "
        "crm.internal); every other loopback, private, link-local or metadata address is refused",
    )
    webhook_url: str = Field("", description="where webhook steps POST their JSON (empty: webhook steps fail)")
    test_recipients: str = Field(
        "",
        description="the seed list: e-mail addresses and phones test sends may go to, comma-separated "
        "(journeys test-send refuses any other)",
    )
    stale_after_hours: float = Field(
        24.0,
        description="a follow-up firing this long after it fell due, or a message held up this long by "
        "an outage, follows its step's stale policy",
    )
    timezone: str = Field("Asia/Shanghai", description="the lender's time zone for reports and the demo")
    currency: str = Field(
        "CNY", pattern=r"^[A-Z]{3}$", description="the currency of reports: funded volumes and marketing costs"
    )
    funded_margin: Decimal = Field(
        Decimal("0.03"),
        ge=0,
        le=1,
        description="share of funded volume counted as return in return on spend (the lender's net margin "
        "over a loan's life; `report costs --margin` overrides it)",
    )
    default_locale: str = Field("zh-CN", description="locale used when a lead's language has no template")
    default_phone_region: str = Field("CN", description="region for phone numbers written without +country")
    clock_speed: float = Field(
        1.0, gt=0, description="time runs this many times faster than the wall clock (rehearsals; 1 in production)"
    )
    clock_origin: str = Field(
        "", description="the instant from which a faster clock runs (ISO 8601 with offset; needed with a speed)"
    )
    clock: Literal["wall", "store"] = Field(
        "wall",
        description="wall: the real time; store: the store's own time, the last moment its runs reached "
        "(a demo or a simulation: an agent's call or an opt-out is recorded when the simulation stands)",
    )
    aggregate_cache: int = Field(
        100_000,
        ge=1,
        description="aggregates each store keeps in memory (leads, enrolments…, least recently used first "
        "out; a settled message, an enrolment that exited, a finished task leave at once): memory grows "
        "with it, reads fall with it",
    )
    partitions: int = Field(
        8,
        ge=1,
        le=256,
        description="lead partitions the processes share (workers on PostgreSQL, an embedded run and its "
        "helper on SQLite); fixed by `huoke db init` for a new store",
    )
    cores: int = Field(
        2,
        ge=1,
        le=2,
        description="processes an embedded run (`huoke demo`, `huoke run` on SQLite) uses: with 2, a helper "
        "process works most of the lead partitions on the second core while the first keeps the views",
    )
    helper_from: int = Field(
        1000,
        ge=0,
        description="with HUOKE_CORES=2, a run lends the helper its partitions when at least this many lead events "
        "and due timers wait; smaller runs stay in one process (a step's round trip costs more than it saves)",
    )
    worker_advances_views: bool = Field(
        True,
        description="workers keep the views current (set false when `huoke projections run` does, distributed mode)",
    )

    @property
    def seed_list(self) -> set[str]:
        return {r.strip() for r in self.test_recipients.split(",") if r.strip()}

    @property
    def master_key_path(self) -> Path:
        """The master key's file: never inside the data folder by default, so a copy of the data
        (a backup, a stolen disk image of it) does not carry the key that opens it."""
        return self.master_key_file or self.data_dir.parent / f"{self.data_dir.name}-keys" / "master.key"

    @property
    def legacy_master_key_path(self) -> Path:
        """Where huoke kept the key before (inside the data folder): ``db init`` moves it out."""
        return self.data_dir / "master.key"

    @property
    def link_keys(self) -> tuple[str, tuple[str, ...]]:
        """The current link key and the older ones still accepted."""
        old = tuple(k.strip() for k in self.unsubscribe_old_secrets.get_secret_value().split(",") if k.strip())
        return self.unsubscribe_secret.get_secret_value(), old

    def secret_problems(self) -> list[str]:
        """Why the secrets cannot protect a live service: missing, short or published defaults."""
        problems = []
        current, old = self.link_keys
        named = [
            ("HUOKE_UNSUBSCRIBE_SECRET", current, "signs unsubscribe and confirmation links"),
            ("HUOKE_SUPPRESSION_PEPPER", self.suppression_pepper.get_secret_value(), "keys the suppression list"),
            *(("HUOKE_UNSUBSCRIBE_OLD_SECRETS", k, "older link key") for k in old),
        ]
        for name, value, role in named:
            if not value:
                problems.append(f"{name} is not set ({role})")
            elif value.lower() in WEAK_SECRETS:
                problems.append(f"{name} is a published default ({role}); choose your own")
            elif len(value) < MIN_SECRET:
                problems.append(f"{name} has {len(value)} characters ({role}); use at least {MIN_SECRET}")
            elif estimated_bits(value) < MIN_SECRET_BITS:
                problems.append(
                    f"{name} is too predictable ({role}): about {estimated_bits(value):.0f} bits of randomness, "
                    f"at least {MIN_SECRET_BITS} needed (repeated or few distinct characters)"
                )
        return problems

    def postgres_env(self) -> dict[str, str] | None:
        """eventsourcing's POSTGRES_* settings from the database URL, or None for SQLite."""
        if not self.database_url:
            return None
        url = urlparse(self.database_url)
        if url.scheme not in ("postgresql", "postgres"):
            raise ValueError(f"HUOKE_DATABASE_URL must start with postgresql://, got {url.scheme}://")
        query = parse_qs(url.query)
        return {
            "PERSISTENCE_MODULE": POSTGRES_MODULE,
            "POSTGRES_DBNAME": (url.path or "/huoke").lstrip("/") or "huoke",
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": url.username or "postgres",
            "POSTGRES_PASSWORD": url.password or "",
            "POSTGRES_SCHEMA": query.get("schema", ["public"])[0],
            # One pool per process, shared by its stores (bootstrap's factory): two connections
            # kept open, more only under load.
            "POSTGRES_POOL_SIZE": "2",
            # How long a store waits for a connection (eventsourcing tries ten times): 5 s, not
            # its 30 s, so a process notices an outage in under a minute instead of five.
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_MAX_OVERFLOW": str(self.pg_connections - 2),
        }
