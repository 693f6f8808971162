"""`kiosk verify PAYLOAD`: print the verdict for one scanned payload (text or one JSON object)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from checkpoint.configtypes import SecretError
from checkpoint.reasons import Reason
from checkpoint.residents import Registry
from kiosk.config import KioskConfig, PolicyConfig
from kiosk.credentials.dcc import load_certificate
from kiosk.credentials.verdict import Verdict
from kiosk.credentials.verify import build_verifier
from kiosk.policy import HEALTH_KINDS, PASS_KINDS, not_holder

EXIT_REFUSED, EXIT_USAGE = 1, 2


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; one without a zone is UTC."""
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def read_certificate(value: str) -> x509.Certificate:
    """A certificate from a PEM/DER file, or from base64 DER given inline."""
    try:
        is_file = Path(value).is_file()
    except (OSError, ValueError):  # base64 text is often longer than a file name may be
        is_file = False
    return load_certificate(Path(value).read_bytes() if is_file else value)


def describe(verdict: Verdict) -> str:
    """One human-readable line; never the raw payload."""
    parts = [f"{verdict.kind}: {'valid' if verdict.valid else 'invalid'}", verdict.status]
    if verdict.reasons:
        parts.append("reasons " + ",".join(verdict.reasons))
    if verdict.pass_ is not None:
        p = verdict.pass_
        parts.append(f"pass {p.pid} {p.cat}" + (f" household {p.hh}" if p.hh else ""))
    if verdict.health is not None and verdict.health.status is not None:
        parts.append(f"health {verdict.health.scheme} {verdict.health.status}")
        travel = verdict.health.travel
        parts.append("travel " + ("none" if travel is None else travel + (" starred" if verdict.health.star
                                                                          else "")))
    if verdict.person is not None:
        parts.append(f"person {verdict.person.masked}")
    line = " ".join(parts)
    return f"{line} ({verdict.detail})" if verdict.detail else line


def gate_reasons(verdict: Verdict, shown_with: Sequence[Verdict], policy: PolicyConfig) -> tuple[Reason, ...]:
    """Reasons the gate adds to a health code under this policy: no travel card where one is required, and
    a code that is not the holder's of a pass shown with it."""
    reasons: list[Reason] = []
    if verdict.health is None or not (verdict.kind in HEALTH_KINDS or verdict.kind == "id_number"):
        return ()
    if "travel" in policy.require and verdict.health.status is not None and verdict.health.travel is None:
        reasons.append(Reason.NO_TRAVEL_CODE)
    holders = [v for v in shown_with if v.kind in PASS_KINDS]
    if any(not_holder(h, verdict, require_bound=policy.require_bound_health) for h in holders):
        reasons.append(Reason.HEALTH_CODE_NOT_HOLDER)
    return tuple(r for r in reasons if r not in verdict.reasons)


def run_verify(
    payload: str,
    *,
    config: KioskConfig,
    dsc: list[str],
    at: str | None,
    as_json: bool,
    shown_with: Sequence[str] = (),
    out: Callable[[str], None] = print,
) -> int:
    """Verify `payload` ('-' reads standard input); 0 when acceptable as it stands, 1 when refused.

    `shown_with` are codes shown in the same visit (a pass): a health code then also gets
    `health_code_not_holder` when it names another holder; `no_travel_code` follows the config's policy.
    """
    try:
        now = parse_time(at) if at else datetime.now(UTC)
    except ValueError:
        print(f"kiosk verify: --at {at!r} is not an ISO 8601 time", file=sys.stderr)
        return EXIT_USAGE
    certificates = []
    for value in dsc:
        try:
            certificates.append(read_certificate(value))
        except (ValueError, OSError) as exc:
            print(f"kiosk verify: --dsc {value[:40]!r}: not a certificate: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if payload == "-":
        payload = sys.stdin.read()
    # Read the site's registry if there is one; never create state from a one-off command.
    registry_path = config.passes.registry or config.storage.state_dir / "registry.sqlite"
    registry = Registry(registry_path if registry_path.is_file() else ":memory:")
    try:
        verifier = build_verifier(config, extra_dsc=certificates, registry=registry)
    except (OSError, SecretError) as exc:
        registry.close()
        print(f"kiosk verify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with verifier:
        verdict = verifier.verify(payload, now=now)
        others = [verifier.verify(text, now=now) for text in shown_with]
    extra = gate_reasons(verdict, others, config.policy)
    if extra:
        verdict = replace(verdict, reasons=verdict.reasons + extra)
    out(json.dumps(verdict.to_json(), ensure_ascii=False) if as_json else describe(verdict))
    return 0 if verdict.valid and not verdict.reasons else EXIT_REFUSED
