"""Kiosk configuration: TOML validated by pydantic models with bounded fields."""

from __future__ import annotations

import os
import re
from datetime import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, urlsplit

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
)
from checkpoint.tomlconfig import read_toml_text, resolve_path, validate_toml
from kiosk.prompts import DEFAULT_PROMPTS


def _check_pin(value: int) -> int:
    if value <= 3:
        raise ValueError("GPIO 4 to 27: GPIO 0 and 1 are the HAT ID EEPROM's, 2 and 3 the I2C bus of the "
                         "thermometer")
    return value


BcmPin = Annotated[int, Field(ge=0, le=27), AfterValidator(_check_pin)]
Colour = Literal["green", "blue", "red", "pink"]
Action = Literal["allow", "deny", "attention"]


class SiteConfig(Strict):
    id: Name
    kiosk: Name
    direction: Literal["in", "out", "both"] = "in"
    timezone: TimeZoneName = "Asia/Shanghai"
    hmac_key_file: ConfigPath | None = None
    hmac_key_credential: CredentialName = None

    def hmac_key(self) -> bytes | None:
        """The site HMAC key, byte for byte, from its owner-only file or its credential."""
        return read_key("site.hmac_key", self.hmac_key_file, self.hmac_key_credential)


class CameraConfig(Strict):
    source: Literal["v4l2", "picamera2", "files"] = "v4l2"
    device: str = "/dev/video0"
    path: ConfigPath | None = None
    loop: bool = True
    width: int = Field(640, ge=160, le=1920)
    height: int = Field(480, ge=120, le=1080)
    fps: int = Field(15, ge=1, le=60)
    reopen_backoff_s: float = Field(0.5, gt=0, le=10)
    reopen_backoff_max_s: float = Field(30.0, gt=0, le=600)
    required: bool = True

    @model_validator(mode="after")
    def _files_need_path(self) -> CameraConfig:
        if self.source == "files" and self.path is None:
            raise ValueError("camera.path is required when camera.source = 'files'")
        return self


class ThermometerConfig(Strict):
    bus: int = Field(1, ge=0, le=31)
    address: int = Field(0x5A, ge=0x03, le=0x77)
    emissivity: float | None = Field(None, ge=0.1, le=1.0)
    retries: int = Field(3, ge=0, le=10)
    settle_reads: int = Field(3, ge=0, le=50)
    samples: int = Field(5, ge=1, le=25)
    sample_interval_s: float = Field(0.1, ge=0.0, le=2.0)
    presence_delta_c: float = Field(1.5, ge=0.1, le=15.0)
    presence_timeout_s: float = Field(8.0, gt=0, le=60)
    outlier_c: float = Field(0.5, gt=0, le=5.0)
    # body_c = skin_c + max(0, offset_c + ambient_coeff * (reference_ambient_c - ambient_c)): never lowers a
    # reading, so a febrile skin reading stays febrile. Fit the coefficients with `kiosk calibrate`.
    offset_c: float = Field(1.8, ge=-5.0, le=10.0)
    ambient_coeff: float = Field(0.15, ge=0.0, le=1.0)
    reference_ambient_c: float = Field(25.0, ge=-10.0, le=45.0)
    required: bool = True


class GateConfig(Strict):
    relay_pin: BcmPin = 17
    active_high: bool = False
    relay_pulse_s: float = Field(1.5, gt=0, le=30)
    deny_hold_s: float = Field(2.0, ge=0, le=30, description=(
        "After a deny: the red LED shows, and no session starts, this long."))
    attention_timeout_s: float = Field(60.0, ge=5, le=3600, description=(
        "An attention not resolved by staff within this times out."))
    attention_hold_s: float = Field(4.0, ge=0, le=60, description=(
        "After an attention, the person steps aside; the lane serves the next one after this."))
    max_open_attentions: int = Field(5, ge=1, le=50, description=(
        "Attentions waiting for staff at most; with this many open, the next person is asked to wait."))
    forgery_limit: int = Field(5, ge=2, le=1000, description=(
        "This many codes failing their check, or unregistered ID numbers, within forgery_window_s "
        "raise a forgery alert."))
    forgery_window_s: float = Field(300.0, ge=10, le=86_400,
                                    description="The window in which failed checks are counted.")
    forgery_delay_s: float = Field(3.0, ge=0, le=60, description=(
        "Once forgery_limit is reached, each further deny is slowed by this much."))


class LedsConfig(Strict):
    """The status LEDs; KioskConfig checks that no two devices share a pin."""

    green_pin: BcmPin = 5
    red_pin: BcmPin = 6
    amber_pin: BcmPin = 13
    active_high: bool = True


class PirConfig(Strict):
    enabled: bool = True
    pin: BcmPin = 4
    queue_len: int = Field(1, ge=1, le=100)
    sample_rate: float = Field(10.0, gt=0, le=100)
    threshold: float = Field(0.5, gt=0, lt=1)


class ButtonConfig(Strict):
    enabled: bool = True
    pin: BcmPin = 27
    hold_s: float = Field(2.0, ge=0.5, le=10)
    bounce_s: float | None = Field(None, gt=0, le=1)
    pull_up: bool = True


class VoiceConfig(Strict):
    enabled: bool = True
    voice: str = Field("cmn", pattern=r"^[A-Za-z0-9_+-]{1,32}$")
    greet_interval_s: float = Field(10.0, ge=0, le=600, description=(
        "The PIR greeting is spoken at most this often."))
    speed_wpm: int = Field(150, ge=80, le=450)
    device: str = "default"
    cache_dir: ConfigPath = Path("/var/cache/checkpoint-kiosk/voice")
    prompts: dict[str, Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=dict)
    files: dict[str, ConfigPath] = Field(default_factory=dict)
    required: bool = False

    @field_validator("prompts", "files")
    @classmethod
    def _known_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(DEFAULT_PROMPTS))
        if unknown:
            raise ValueError(f"unknown prompt key(s) {unknown}; known: {sorted(DEFAULT_PROMPTS)}")
        return value

    def prompt_texts(self) -> dict[str, str]:
        """Every prompt's text: the defaults overridden by config."""
        return {**DEFAULT_PROMPTS, **self.prompts}


class MqttConfig(Strict):
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(1883, ge=0, le=65535)
    local_broker: bool = False
    tls: bool = False
    ca_file: ConfigPath | None = None
    username: str | None = None
    password_file: ConfigPath | None = None
    password_credential: CredentialName = None
    keepalive_s: int = Field(30, ge=5, le=600)
    connect_timeout_s: float = Field(3.0, gt=0, le=60)
    reconnect_min_s: float = Field(0.5, gt=0, le=60)
    reconnect_max_s: float = Field(30.0, gt=0, le=600)
    heartbeat_s: float = Field(30.0, ge=1, le=3600)
    max_inflight: int = Field(20, ge=1, le=1000)
    required: bool = False

    @model_validator(mode="after")
    def _port_zero_only_local(self) -> MqttConfig:
        if self.port == 0 and not self.local_broker:
            raise ValueError("mqtt.port = 0 (pick a free port) needs mqtt.local_broker = true")
        return self

    def password(self) -> bytes | None:
        """The broker password, from its file or credential."""
        return read_secret("mqtt.password", self.password_file, self.password_credential)


def _check_hours(value: str | None) -> str | None:
    if value is None:
        return value
    match = re.fullmatch(r"(\d\d):(\d\d)-(\d\d):(\d\d)", value)
    if not match:
        raise ValueError("a window 'HH:MM-HH:MM', e.g. '08:00-20:00'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    try:
        time(h1, m1), time(h2, m2)
    except ValueError:
        raise ValueError("hours and minutes of a real clock time") from None
    return value


class CategoryPolicy(Strict):
    action: Action | None = None
    hours: Annotated[str | None, AfterValidator(_check_hours)] = None


class HouseholdPolicy(Strict):
    max_exits_per_day: int = Field(0, ge=0, le=1000)


def _default_categories() -> dict[Colour, CategoryPolicy]:
    return {"red": CategoryPolicy(action="attention"), "pink": CategoryPolicy(hours="08:00-20:00")}


class PolicyConfig(Strict):
    fever_threshold_c: float = Field(37.3, ge=35.0, le=42.0)
    require: Annotated[list[Literal["health", "pass", "travel"]], Unique] = Field(["health", "pass"])
    health_ok: Annotated[list[Literal["green", "yellow", "red"]], Unique] = Field(["green"])
    on_platform_down: Action = "attention"
    travel_ok: Annotated[list[Literal["green", "yellow", "red"]], Unique] = Field(["green"], description=(
        "Travel card (行程卡) colours that pass when \"travel\" is required; others give travel_risk."))
    travel_star: Action = Field("attention", description=(
        "A starred travel card (itinerary touched a risk city): allow, deny, or attention (travel_risk)."))
    require_bound_health: bool = Field(False, description=(
        "With a v2 pass (which names its holder's hpr), a health code naming no holder counts as not the "
        "holder's (health_code_not_holder). Off by default: v1 tokens and DCCs name no hpr."))
    session_timeout_s: float = Field(20.0, ge=2, le=300)
    category: dict[Colour, CategoryPolicy] = Field(default_factory=_default_categories)
    household: HouseholdPolicy = HouseholdPolicy()


def _url_parts(value: str) -> SplitResult | None:
    """`value` split into its parts; None for a broken host or port."""
    try:
        parts = urlsplit(value)
        if parts.port == 0:  # `port` raises ValueError when out of range
            return None
    except ValueError:
        return None
    return parts


def _check_url(value: str, *, allow_http: bool) -> str:
    """What HttpHealthProvider needs of its URL, checked before the daemon starts."""
    parts = _url_parts(value)
    if parts is None or not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value) or not parts.hostname:
        raise ValueError("an https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a URL without user:password@; give the platform's token in health.http_token_file "
                         "or health.http_token_credential")
    if parts.scheme == "http" and not allow_http:
        raise ValueError("an https:// URL; plain http:// (ID hashes unencrypted) only with "
                         "health.allow_insecure_http = true")
    return value


class PassesConfig(Strict):
    keys_dir: ConfigPath | None = Field(None, description=(
        "Office public keys, one <kid>.pub (PEM) each; they sign passes and revocation lists."))
    registry: ConfigPath | None = Field(None, description=(
        "The resident registry (SQLite); by default <state_dir>/registry.sqlite."))
    clock_skew_s: int = Field(60, ge=0, le=3600)


class CommandsConfig(Strict):
    keys_dir: ConfigPath | None = Field(None, description=(
        "Office operators' public keys, one <kid>.pub (PEM) each: signed commands (CKC1) from them are "
        "obeyed. Unset: every command is refused."))


class HealthConfig(Strict):
    providers: list[Literal["token", "dcc", "http"]] = Field(["token"])
    token_keys_dir: ConfigPath | None = Field(None, description=(
        "Health-authority public keys, one <kid>.pub each."))
    max_age_s: int = Field(180, ge=10, le=86_400)
    clock_skew_s: int = Field(30, ge=0, le=600)
    dcc_trust_dir: ConfigPath | None = Field(None, description="DSC certificates (PEM or DER), one per file.")
    allow_insecure_http: bool = Field(False, description=(
        "Accept a plain http:// http_url, on purpose: codes and ID hashes then cross the network in clear."))
    http_url: str | None = None
    http_timeout_s: float = Field(0.8, gt=0, le=10)
    http_cache_s: float = Field(30.0, ge=0, le=3600)
    http_retries: int = Field(1, ge=0, le=5)
    http_scan_codes: bool = Field(False, description=(
        "Also send scanned codes the kiosk does not recognise (any QR text, a shop's menu too) to the "
        "platform; false: ID-number lookups only."))
    http_token_file: ConfigPath | None = None
    http_token_credential: CredentialName = None

    @field_validator("http_url")
    @classmethod
    def _usable_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        return _check_url(value, allow_http=info.data.get("allow_insecure_http") is True)

    @model_validator(mode="after")
    def _http_needs_url(self) -> HealthConfig:
        if "http" in self.providers and self.http_url is None:
            raise ValueError("health.http_url is required when 'http' is in health.providers")
        if len(set(self.providers)) != len(self.providers):
            raise ValueError("health.providers lists a provider twice")
        return self

    def http_token(self) -> bytes | None:
        """The bearer token for the health platform, from its file or credential."""
        token = read_secret("health.http_token", self.http_token_file, self.http_token_credential)
        if token is not None and any(not 0x21 <= b < 0x7F for b in token):
            raise SecretError("health.http_token: expected printable ASCII without spaces (a bearer token)")
        return token


class StorageConfig(Strict):
    state_dir: ConfigPath = Path("/var/lib/checkpoint-kiosk")
    outbox_max_entries: int = Field(1_000_000, ge=1000, le=100_000_000)
    delivered_retention_s: float = Field(7 * 86_400, ge=0, le=365 * 86_400)
    backlog_alert: int = Field(500, ge=1, le=10_000_000)


class KioskConfig(Strict):
    hardware: Literal["real", "emulated"] = "real"
    site: SiteConfig
    camera: CameraConfig = CameraConfig()
    thermometer: ThermometerConfig = ThermometerConfig()
    gate: GateConfig = GateConfig()
    leds: LedsConfig = LedsConfig()
    pir: PirConfig = PirConfig()
    button: ButtonConfig = ButtonConfig()
    voice: VoiceConfig = VoiceConfig()
    mqtt: MqttConfig = MqttConfig()
    policy: PolicyConfig = PolicyConfig()
    passes: PassesConfig = PassesConfig()
    commands: CommandsConfig = CommandsConfig()
    health: HealthConfig = HealthConfig()
    storage: StorageConfig = StorageConfig()

    @model_validator(mode="after")
    def _pins_and_secrets(self) -> KioskConfig:
        pins: dict[int, str] = {}
        for key, pin in self._claimed_pins():
            if pin in pins:
                raise ValueError(f"{pins[pin]} and {key} both use GPIO {pin}; give each device its own pin")
            pins[pin] = key
        site = self.site
        if self.hardware == "real" and site.hmac_key_file is None and site.hmac_key_credential is None:
            raise ValueError(
                "site.hmac_key_file or site.hmac_key_credential is required when hardware = 'real'"
            )
        return self

    def _claimed_pins(self) -> list[tuple[str, int]]:
        pins = [
            ("gate.relay_pin", self.gate.relay_pin),
            ("leds.green_pin", self.leds.green_pin),
            ("leds.red_pin", self.leds.red_pin),
            ("leds.amber_pin", self.leds.amber_pin),
        ]
        if self.pir.enabled:
            pins.append(("pir.pin", self.pir.pin))
        if self.button.enabled:
            pins.append(("button.pin", self.button.pin))
        return pins


def parse_config(text: str, *, source: str = "<config>", base_dir: Path | None = None) -> KioskConfig:
    """Parse and validate TOML text; relative paths resolve against base_dir."""
    config = validate_toml(KioskConfig, text, source=source)
    return _resolve_paths(config, base_dir) if base_dir is not None else config


def load_config(path: Path) -> KioskConfig:
    """Read, parse and validate a config file."""
    return parse_config(read_toml_text(path), source=str(path), base_dir=path.resolve().parent)


def embedded_config_text() -> str:
    """The embedded simulation config (also at config/simulate.toml)."""
    return resources.files("kiosk.sim").joinpath("data/simulate.toml").read_text(encoding="utf-8")


def load_embedded() -> KioskConfig:
    """The embedded default: a simulated gate with nothing to configure."""
    base = Path(str(resources.files("kiosk.sim").joinpath("data")))
    return parse_config(embedded_config_text(), source="<embedded simulate.toml>", base_dir=base)


def _resolve_paths(config: KioskConfig, base: Path) -> KioskConfig:
    def fix(p: Path | None) -> Path | None:
        return resolve_path(p, base)

    camera = config.camera.model_copy(update={"path": fix(config.camera.path)})
    voice = config.voice.model_copy(
        update={
            "cache_dir": fix(config.voice.cache_dir),
            "files": {k: fix(v) for k, v in config.voice.files.items()},
        }
    )
    storage = config.storage.model_copy(update={"state_dir": fix(config.storage.state_dir)})
    passes = config.passes.model_copy(
        update={"keys_dir": fix(config.passes.keys_dir), "registry": fix(config.passes.registry)}
    )
    commands = config.commands.model_copy(update={"keys_dir": fix(config.commands.keys_dir)})
    health = config.health.model_copy(
        update={
            "token_keys_dir": fix(config.health.token_keys_dir),
            "dcc_trust_dir": fix(config.health.dcc_trust_dir),
            "http_token_file": fix(config.health.http_token_file),
        }
    )
    site = config.site.model_copy(update={"hmac_key_file": fix(config.site.hmac_key_file)})
    mqtt = config.mqtt.model_copy(
        update={"password_file": fix(config.mqtt.password_file), "ca_file": fix(config.mqtt.ca_file)}
    )
    return config.model_copy(
        update={
            "camera": camera,
            "voice": voice,
            "storage": storage,
            "site": site,
            "mqtt": mqtt,
            "passes": passes,
            "commands": commands,
            "health": health,
        }
    )


def check_paths(config: KioskConfig) -> list[str]:
    """Problems with the key directories and the CA file the config names: each must be there."""
    problems = []
    for key, path, is_dir, expected in (
        ("passes.keys_dir", config.passes.keys_dir, True, "a directory of the office's <kid>.pub keys"),
        ("commands.keys_dir", config.commands.keys_dir, True, "a directory of operators' <kid>.pub keys"),
        ("health.token_keys_dir", config.health.token_keys_dir, True,
         "a directory of the health authority's <kid>.pub keys"),
        ("health.dcc_trust_dir", config.health.dcc_trust_dir, True, "a directory of DCC signer certificates"),
        ("mqtt.ca_file", config.mqtt.ca_file, False, "the CA certificate (PEM) of the broker's certificate"),
    ):
        if path is None:
            continue
        if not path.exists():
            problems.append(f"{key}: {path} does not exist; expected {expected}")
        elif is_dir and not path.is_dir():
            problems.append(f"{key}: {path} is not a directory; expected {expected}")
        elif not is_dir and not path.is_file():
            problems.append(f"{key}: {path} is not a file; expected {expected}")
    return problems


def check_secrets(config: KioskConfig) -> list[str]:
    """Problems reading the configured secrets; credentials are checked only under systemd."""
    problems = []
    under_systemd = bool(os.environ.get("CREDENTIALS_DIRECTORY"))
    for key, file, credential, read in (
        ("site.hmac_key", config.site.hmac_key_file, config.site.hmac_key_credential, read_key),
        ("mqtt.password", config.mqtt.password_file, config.mqtt.password_credential, read_secret),
    ):
        if file is None and not under_systemd:
            continue
        try:
            read(key, file, credential)
        except SecretError as exc:
            problems.append(str(exc))
    health = config.health
    if health.http_token_file is not None or under_systemd:
        try:
            health.http_token()
        except SecretError as exc:
            problems.append(str(exc))
    return problems
