"""Classify one scanned payload and verify it with the matching credential; never raises."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from cryptography import x509

from checkpoint import idnumber
from checkpoint.keys import KeyRing
from checkpoint.reasons import Reason
from checkpoint.residents import Registry
from kiosk.config import KioskConfig
from kiosk.credentials.dcc import DccVerifier, load_trust_dir
from kiosk.credentials.health_token import HealthTokenVerifier
from kiosk.credentials.http import HttpHealthProvider
from kiosk.credentials.passes import PassVerifier
from kiosk.credentials.revocation import RevocationList
from kiosk.credentials.verdict import Kind, PersonFacts, Verdict, unknown

log = logging.getLogger(__name__)

MAX_PAYLOAD_CHARS = 4096  # a QR code holds at most 7089 digits; every credential we know is far shorter
PASS_PREFIX, TOKEN_PREFIX, DCC_PREFIX = "CKP1.", "HCT1.", "HC1:"
# Used only with hardware = "emulated" and no key configured, so person refs stay stable across runs.
SIMULATION_SITE_KEY = b"checkpoint-kiosk simulation site key (not for real gates)"


class CredentialVerifier:
    """Routes a payload by its shape: pass, health token, DCC, ID number, or the online platform."""

    def __init__(
        self,
        *,
        passes: PassVerifier | None = None,
        token: HealthTokenVerifier | None = None,
        dcc: DccVerifier | None = None,
        http: HttpHealthProvider | None = None,
        registry: Registry | None = None,
        site_key: bytes | None = None,
        http_scan_codes: bool = False,
    ) -> None:
        self.passes, self.token, self.dcc, self.http = passes, token, dcc, http
        self.http_scan_codes = http_scan_codes
        self.registry = registry
        self._site_key = site_key

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the registry and the platform connection; safe to call again."""
        if self.http is not None:
            self.http.close()
        if self.registry is not None:
            self.registry.close()

    def verify(self, payload: bytes | str, *, now: datetime) -> Verdict:
        """The verdict for one payload at `now` (an aware datetime); any failure is a typed verdict."""
        try:
            return self._verify(payload, now)
        except Exception as exc:  # a bug in one verifier must not take the gate down
            log.exception("credential verification failed unexpectedly")
            return unknown(f"internal error: {type(exc).__name__}")

    def _verify(self, payload: bytes | str, now: datetime) -> Verdict:
        if isinstance(payload, bytes):
            try:
                payload = payload.decode("utf-8")
            except UnicodeDecodeError:
                return unknown("payload is not UTF-8 text")
        text = payload.strip()
        if not text:
            return unknown("empty payload")
        if len(text) > MAX_PAYLOAD_CHARS:
            return unknown(f"payload of {len(text)} characters is longer than any credential")
        if text.startswith(PASS_PREFIX):
            if self.passes is None:
                return _refused("pass", Reason.PASS_INVALID, "no office keys configured (passes.keys_dir)")
            return self.passes.verify(text, now=now)
        if text.startswith(TOKEN_PREFIX):
            if self.token is None:
                return _refused("health_token", Reason.HEALTH_CODE_INVALID, "token provider not enabled")
            return self.token.verify(text, now=now)
        if text.startswith(DCC_PREFIX):
            if self.dcc is None:
                return _refused("dcc", Reason.HEALTH_CODE_INVALID, "the dcc provider is not enabled")
            return self.dcc.verify(text, now=now)
        if idnumber.looks_like_id_number(text):
            return self._id_number(text, now)
        if self.http is not None and self.http_scan_codes and text.isprintable():
            return self.http.check_code(text, now=now)
        return unknown("not a pass, health code or ID number")

    def _id_number(self, text: str, now: datetime) -> Verdict:
        try:
            number = idnumber.parse(text, today=now.date())
        except idnumber.IdNumberError as exc:
            return _refused("id_number", Reason.PASS_INVALID, f"ID number: {exc.problem}")
        if self._site_key is None:
            return _refused("id_number", Reason.PASS_INVALID, "no site HMAC key configured (site.hmac_key_*)")
        ref = number.person_ref(self._site_key)
        resident = self.registry.lookup(ref) if self.registry is not None else None
        person = PersonFacts(
            ref=ref,
            masked=number.masked,
            registered=resident is not None,
            household=resident.household if resident else None,
        )
        if resident is None:
            verdict = Verdict("id_number", valid=False, status="not_registered", reasons=(Reason.NO_PASS,),
                              detail="ID number not in the resident registry", person=person)
        else:
            verdict = Verdict("id_number", valid=True, status="registered", person=person)
        if self.http is None:
            return verdict
        # Elderly residents without a phone: the platform looks up their health code by ID hash.
        health = self.http.check_idh(ref, now=now)
        return replace(
            verdict,
            health=health.health,
            reasons=verdict.reasons + health.reasons,
            detail="; ".join(d for d in (verdict.detail, health.detail) if d),
        )


def _refused(kind: Kind, reason: Reason, detail: str) -> Verdict:
    return Verdict(kind, valid=False, status="invalid", reasons=(reason,), detail=detail)


def site_key(config: KioskConfig) -> bytes | None:
    """The configured site HMAC key; the fixed simulation key on emulated hardware without one."""
    key = config.site.hmac_key()
    if key is None and config.hardware == "emulated":
        return SIMULATION_SITE_KEY
    return key


def build_verifier(
    config: KioskConfig,
    *,
    extra_dsc: Iterable[x509.Certificate] = (),
    revocations: RevocationList | None = None,
    registry: Registry | None = None,
) -> CredentialVerifier:
    """A verifier for everything the config enables; `extra_dsc` adds DCC signer certificates."""
    health = config.health
    pass_keys = _keys(config.passes.keys_dir)
    if revocations is None and config.passes.keys_dir is not None:
        revocations = RevocationList(
            pass_keys, site=config.site.id, path=config.storage.state_dir / "revocations.txt"
        )
    passes = None
    if config.passes.keys_dir is not None:
        revoked: Callable[[], frozenset[str]] | frozenset[str] = (
            revocations.revoked if revocations is not None else frozenset()
        )
        passes = PassVerifier(pass_keys, revoked=revoked, clock_skew_s=config.passes.clock_skew_s)
    token = None
    if "token" in health.providers:
        token = HealthTokenVerifier(
            _keys(health.token_keys_dir), max_age_s=health.max_age_s, clock_skew_s=health.clock_skew_s
        )
    trust = list(extra_dsc)
    if health.dcc_trust_dir is not None:
        trust += load_trust_dir(health.dcc_trust_dir)
    dcc = DccVerifier(trust) if "dcc" in health.providers or trust else None
    http = None
    if "http" in health.providers and health.http_url is not None:
        http = HttpHealthProvider(
            health.http_url,
            timeout_s=health.http_timeout_s,
            cache_s=health.http_cache_s,
            retries=health.http_retries,
            token=health.http_token(),
            max_age_s=health.max_age_s,
            clock_skew_s=health.clock_skew_s,
        )
    if registry is None:
        registry = Registry(config.passes.registry or config.storage.state_dir / "registry.sqlite")
    return CredentialVerifier(
        passes=passes, token=token, dcc=dcc, http=http, registry=registry, site_key=site_key(config),
        http_scan_codes=health.http_scan_codes,
    )


def _keys(directory: Path | None) -> KeyRing:
    return KeyRing.from_dir(directory) if directory is not None else KeyRing()
