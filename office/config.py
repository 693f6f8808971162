"""Collector configuration: TOML validated by pydantic models with bounded fields (like the kiosk's)."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from checkpoint.configtypes import (
    ConfigPath,
    CredentialName,
    Name,
    SecretError,
    Strict,
    TimeZoneName,
    Unique,
    read_key,
    read_secret,
    secret_path,
)
from checkpoint.keys import KeyFileError, load_private_key
from checkpoint.tomlconfig import read_toml_text, resolve_path, validate_toml

DEFAULT_CONFIG = Path("/etc/checkpoint-kiosk/office.toml")
STATE_DIR = Path("/var/lib/checkpoint-office")  # the unit's StateDirectory=checkpoint-office
_CLIENT_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _check_clock(value: str) -> str:
    match = re.fullmatch(r"(\d\d):(\d\d)", value)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError("a local clock time 'HH:MM', e.g. '23:55'")
    return value


ClockTime = Annotated[str, AfterValidator(_check_clock)]


def clock_time(value: str) -> time:
    """The `time` of a validated 'HH:MM'."""
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


class BrokerSection(Strict):
    host: str = Field("127.0.0.1", min_length=1, max_length=253)
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = Field(None, min_length=1, max_length=128)
    password_file: ConfigPath | None = None
    password_credential: CredentialName = None
    tls: bool = False
    ca_file: ConfigPath | None = None
    # Names the persistent session that queues entries while this collector is away. The broker makes
    # every client's id its username (use_username_as_clientid), so with a username it is the username,
    # and each collector needs a username of its own. Set it only for a broker without users.
    client_id: str = Field("collector-1", min_length=1, max_length=128)
    # How long the broker keeps the session (and queues for it) while this collector is down.
    session_expiry_s: int = Field(7 * 86_400, ge=60, le=0xFFFF_FFFE)
    keepalive_s: int = Field(30, ge=5, le=600)
    reconnect_min_s: int = Field(1, ge=1, le=60)
    reconnect_max_s: int = Field(30, ge=1, le=600)

    @model_validator(mode="before")
    @classmethod
    def _client_id_defaults_to_username(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("username"), str) and data["username"] \
                and "client_id" not in data:
            return {**data, "client_id": data["username"]}
        return data

    @field_validator("client_id")
    @classmethod
    def _client_id_is_username(cls, value: str, info: ValidationInfo) -> str:
        username = info.data.get("username")
        if username is not None and value != username:
            raise ValueError(f"the username {username!r}, or no client_id: the broker makes each user's name "
                             "its client id (use_username_as_clientid), so each collector needs its own user")
        if username is None and not _CLIENT_ID.fullmatch(value):
            raise ValueError("letters, digits, '_', '.' and '-' only (1-64)")
        return value

    def password(self) -> bytes | None:
        """The broker password, from its file or credential."""
        return read_secret("broker.password", self.password_file, self.password_credential)


class StoreSection(Strict):
    kind: Literal["sqlite", "postgres"] = "sqlite"
    path: ConfigPath = STATE_DIR / "office.sqlite"
    dsn_file: ConfigPath | None = Field(None, description=(
        "A file holding the DSN: it holds a password, so it is never inline."))
    dsn_credential: CredentialName = None

    @model_validator(mode="after")
    def _postgres_needs_dsn(self) -> StoreSection:
        if self.kind == "postgres" and self.dsn_file is None and self.dsn_credential is None:
            raise ValueError("store.dsn_file or store.dsn_credential is required when kind = 'postgres'")
        return self

    def dsn(self) -> str | None:
        """The PostgreSQL DSN, from its file or credential; None for SQLite."""
        if self.kind != "postgres":
            return None
        secret = read_secret("store.dsn", self.dsn_file, self.dsn_credential)
        return secret.decode("utf-8") if secret is not None else None


class IngestSection(Strict):
    enabled: bool = Field(True, description="Run MQTT ingest, the daily report and the purge here.")
    group: str = Field("collectors", pattern=r"^[A-Za-z0-9_-]{1,64}$", description=(
        "The MQTT v5 shared-subscription ($share) group."))
    # false: plain subscriptions, every collector gets every entry (one collector, or a hot standby on the
    # same store). mosquitto 2.0 restores plain subscriptions after a restart, but not shared ones.
    shared: bool = True
    batch_size: int = Field(500, ge=1, le=10_000)
    batch_ms: int = Field(50, ge=1, le=10_000)
    max_payload_bytes: int = Field(16_384, ge=1024, le=1_048_576)
    # "process": validation and store writes in a child process, on a second core; "thread": in this one
    writer: Literal["process", "thread"] = "process"

    @property
    def receive_maximum(self) -> int:
        """MQTT v5 Receive Maximum: two batches unacknowledged, so one fills while the other commits."""
        return min(65_535, 2 * self.batch_size)


Format = Literal["json", "png", "csv", "text"]


def _default_formats() -> list[Format]:
    return ["json", "png"]


class ReportSection(Strict):
    time: ClockTime = Field("23:55", description=(
        "Local time of the daily report; from 12:00 on it reports that day, before 12:00 the day before."))
    timezone: TimeZoneName = "Asia/Shanghai"
    out_dir: ConfigPath = STATE_DIR / "reports"
    publish: bool = Field(True, description="Also publish the JSON to checkpoint/v1/{site}/report.")
    formats: Annotated[list[Format], Unique] = Field(default_factory=_default_formats, min_length=1)

    @property
    def zone(self) -> ZoneInfo:
        """The time zone of the schedule and of report days."""
        return ZoneInfo(self.timezone)


class RetentionSection(Strict):
    days: int = Field(28, ge=1, le=3650)
    purge_time: ClockTime = "03:30"


class RegistrySection(Strict):
    absent_days: int = Field(7, ge=1, le=3650)


class SiteSection(Strict):
    name: str = Field("", max_length=64, description=(
        "The community's name as people know it (e.g. 幸福里社区): on pass sheets and reports."))
    hmac_key_file: ConfigPath | None = None
    hmac_key_credential: CredentialName = None
    pass_key_file: ConfigPath | None = Field(None, description=(
        "The Ed25519 private key (kiosk-admin keygen) that signs this site's passes and revocation lists "
        "in the web app; the kiosks trust its .pub in passes.keys_dir."))
    pass_key_credential: CredentialName = None
    command_key_file: ConfigPath | None = Field(None, description=(
        "The office server's own operator key: it signs remote opens (CKC1) sent from the web app; the "
        "kiosks trust its .pub in commands.keys_dir."))
    command_key_credential: CredentialName = None

    def hmac_key(self) -> bytes | None:
        """The site HMAC key (what kiosks hash ID numbers with), for `trace --id-number`."""
        return read_key("sites.hmac_key", self.hmac_key_file, self.hmac_key_credential)

    def pass_key(self) -> Ed25519PrivateKey | None:
        """The pass and revocation signing key; None when it is not configured."""
        return _private_key("sites.pass_key", self.pass_key_file, self.pass_key_credential)

    def command_key(self) -> Ed25519PrivateKey | None:
        """The remote-open signing key; None when it is not configured."""
        return _private_key("sites.command_key", self.command_key_file, self.command_key_credential)


def _private_key(key: str, file: Path | None, credential: str | None) -> Ed25519PrivateKey | None:
    path = secret_path(key, file, credential)
    if path is None:
        return None
    try:
        return load_private_key(path)
    except KeyFileError as exc:
        raise SecretError(f"{key}: {exc}") from exc


class WebSection(Strict):
    enabled: bool = True
    host: str = Field("127.0.0.1", min_length=1, max_length=253)
    port: int = Field(8080, ge=1, le=65535)
    # Signs the session cookies. Unset: a random key per start, so a restart signs everyone out and
    # several web processes cannot share sessions.
    session_key_file: ConfigPath | None = None
    session_key_credential: CredentialName = None
    session_hours: int = Field(12, ge=1, le=24 * 30)
    tls_certfile: ConfigPath | None = None
    tls_keyfile: ConfigPath | None = None
    silent_after_s: int = Field(120, ge=10, le=86_400, description=(
        "A kiosk not heard from for this long shows grey (kiosks send a heartbeat every 30 s)."))
    broker_username: str | None = Field(None, min_length=1, max_length=128, description=(
        "The web app's own broker user (kiosk-admin broker-user --office NAME): it publishes remote opens "
        "and revocation lists. Unset: the [broker] user."))
    broker_password_file: ConfigPath | None = None
    broker_password_credential: CredentialName = None

    def broker_password(self) -> bytes | None:
        """The web app's broker password, from its file or credential."""
        return read_secret("web.broker_password", self.broker_password_file, self.broker_password_credential)

    @model_validator(mode="after")
    def _tls_needs_both(self) -> WebSection:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("web.tls_certfile and web.tls_keyfile go together")
        return self

    @property
    def tls(self) -> bool:
        """Whether the app itself serves HTTPS (else plain HTTP, or TLS ends at a reverse proxy)."""
        return self.tls_certfile is not None

    def session_key(self) -> bytes | None:
        """The session-signing key from its file or credential; None when neither is set."""
        return read_key("web.session_key", self.session_key_file, self.session_key_credential)


class OfficeConfig(Strict):
    broker: BrokerSection = BrokerSection()
    store: StoreSection = StoreSection()
    ingest: IngestSection = IngestSection()
    report: ReportSection = ReportSection()
    retention: RetentionSection = RetentionSection()
    registry: RegistrySection = RegistrySection()
    sites: dict[Name, SiteSection] = Field(default_factory=dict)
    web: WebSection = WebSection()

    @model_validator(mode="after")
    def _something_to_run(self) -> OfficeConfig:
        if not self.ingest.enabled and not self.web.enabled:
            raise ValueError("ingest.enabled and web.enabled are both false: nothing to run")
        return self


def parse_collector_config(text: str, *, source: str = "<config>", base_dir: Path | None = None
                           ) -> OfficeConfig:
    """Parse and validate TOML text; relative paths resolve against base_dir."""
    config = validate_toml(OfficeConfig, text, source=source)
    return _resolve_paths(config, base_dir) if base_dir is not None else config


def load_office_config(path: Path) -> OfficeConfig:
    """Read, parse and validate a collector config file."""
    return parse_collector_config(read_toml_text(path), source=str(path), base_dir=path.resolve().parent)


def _resolve_paths(config: OfficeConfig, base: Path) -> OfficeConfig:
    def fix(p: Path | None) -> Path | None:
        return resolve_path(p, base)

    broker = config.broker.model_copy(
        update={"password_file": fix(config.broker.password_file), "ca_file": fix(config.broker.ca_file)}
    )
    store = config.store.model_copy(
        update={"path": fix(config.store.path), "dsn_file": fix(config.store.dsn_file)}
    )
    report = config.report.model_copy(update={"out_dir": fix(config.report.out_dir)})
    sites = {name: site.model_copy(update={"hmac_key_file": fix(site.hmac_key_file),
                                           "pass_key_file": fix(site.pass_key_file),
                                           "command_key_file": fix(site.command_key_file)})
             for name, site in config.sites.items()}
    web = config.web.model_copy(update={"session_key_file": fix(config.web.session_key_file),
                                        "tls_certfile": fix(config.web.tls_certfile),
                                        "tls_keyfile": fix(config.web.tls_keyfile),
                                        "broker_password_file": fix(config.web.broker_password_file)})
    return config.model_copy(update={"broker": broker, "store": store, "report": report, "sites": sites,
                                     "web": web})
