"""Fuzz the credential verifier: every payload must end in a typed verdict, never an exception.

Run: .venv/bin/python -m bench.fuzz [--count 100000] [--seed 1]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from checkpoint import idnumber
from checkpoint.keys import KeyRing
from checkpoint.passes import issue_pass
from checkpoint.residents import Registry, Resident
from checkpoint.tokens import issue_token
from kiosk.credentials.dcc import DccVerifier, load_certificate
from kiosk.credentials.health_token import HealthTokenVerifier
from kiosk.credentials.passes import PassVerifier
from kiosk.credentials.verdict import Verdict
from kiosk.credentials.verify import CredentialVerifier

DEFAULT_NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
SITE_KEY = b"fuzz site key"
HPR = "fuzz-platform-holder-17"  # the platform's reference of the holder (v2 passes and tokens)
ID_NUMBER = "11010519491231002X"
DCC_DIR = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "dcc"


@dataclass
class Seeds:
    """Valid payloads of every kind, and a verifier that trusts them."""

    verifier: CredentialVerifier
    payloads: list[str]
    forged: list[str]
    now: datetime  # when every seed is valid: the DCC vector's validation clock


def make_seeds() -> Seeds:
    """Fresh keys, one valid payload per credential kind, and the same structures signed by a stranger."""
    office, health, stranger = (Ed25519PrivateKey.generate() for _ in range(3))
    idh = idnumber.parse(ID_NUMBER).person_ref(SITE_KEY)
    vector = _dcc_vector()
    now = DEFAULT_NOW if vector is None else vector[1]
    start, end = now - timedelta(days=1), now + timedelta(days=30)

    def a_pass(key: Ed25519PrivateKey, kid: str | None, hpr: str | None = None) -> str:
        return issue_pass(key, kid, pid="P-00017", cat="green", hh="9-23-301", name="张*", idh=idh,
                          nbf=start, exp=end, hpr=hpr)

    def a_token(key: Ed25519PrivateKey, kid: str | None, trv: str | None = None) -> str:
        v2 = trv is not None
        return issue_token(key, kid, st="green", idh=None if v2 else idh, iat=now - timedelta(seconds=10),
                           exp=now + timedelta(minutes=5), trv=trv, star=False, hpr=HPR if v2 else None)

    office_ring, health_ring = KeyRing.of(office.public_key()), KeyRing.of(health.public_key())
    payloads = [a_pass(office, None), a_token(health, None), ID_NUMBER,
                a_pass(office, None, HPR), a_token(health, None, "green")]  # v1 and v2 of both formats
    # Same structure and kid, wrong signer: the signature is the only thing wrong.
    office_kid, health_kid = next(iter(office_ring)), next(iter(health_ring))
    forged = [a_pass(stranger, office_kid), a_token(stranger, health_kid),
              a_pass(stranger, office_kid, HPR), a_token(stranger, health_kid, "green")]
    trust = []
    if vector is not None:
        payloads.append(vector[0]["PREFIX"])
        trust.append(load_certificate(vector[0]["TESTCTX"]["CERTIFICATE"]))
    registry = Registry(":memory:")
    registry.upsert([Resident(idh, idnumber.mask(ID_NUMBER), "9-23-301")])
    verifier = CredentialVerifier(
        passes=PassVerifier(office_ring),
        token=HealthTokenVerifier(health_ring),
        dcc=DccVerifier(trust),
        registry=registry,
        site_key=SITE_KEY,
    )
    return Seeds(verifier, payloads, forged, now)


def _dcc_vector() -> tuple[dict[str, Any], datetime] | None:
    """A conformance vector that verifies, with its validation clock; None without the test data."""
    expected = {"EXPECTEDVERIFY": True, "EXPECTEDEXPIRATIONCHECK": True, "EXPECTEDKEYUSAGE": True}
    for path in sorted(DCC_DIR.glob("*/2DCode/raw/*.json")):
        try:
            data = json.loads(path.read_text())
            results = data["EXPECTEDRESULTS"]
            clock = datetime.fromisoformat(data["TESTCTX"]["VALIDATIONCLOCK"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if all(results.get(k) is v for k, v in expected.items()) and "PREFIX" in data:
            return data, clock if clock.tzinfo else clock.replace(tzinfo=UTC)
    return None


def mutate(rng: random.Random, payload: str) -> str | bytes:
    """One random mutation of a valid payload."""
    data = payload.encode()
    kind = rng.randrange(9)
    if kind == 0:  # truncated
        return data[: rng.randrange(len(data))]
    if kind == 1:  # bit flips
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        return bytes(buf)
    if kind == 2:  # one character replaced by random unicode
        i = rng.randrange(len(payload))
        return payload[:i] + chr(rng.randrange(0x20, 0x30000)) + payload[i + 1 :]
    if kind == 3:  # huge
        return payload + payload[-1] * rng.choice((5_000, 100_000, 1_000_000))
    if kind == 4:  # a part swapped for random base64url
        parts = payload.split(".")
        i = rng.randrange(len(parts))
        parts[i] = base64.urlsafe_b64encode(rng.randbytes(rng.randrange(0, 200))).decode().rstrip("=")
        return ".".join(parts)
    if kind == 5:  # inserted and deleted bytes
        i = rng.randrange(len(data))
        return data[:i] + rng.randbytes(rng.randint(1, 8)) + data[i + rng.randint(0, 8) :]
    if kind == 6:  # re-encoded JSON payload with random field values, original signature
        return _tamper_json(rng, payload)
    if kind == 7:  # duplicated separators / prefixes
        return payload.replace(".", "..", 1) if rng.random() < 0.5 else payload[:5] + payload
    return payload.lower() if rng.random() < 0.5 else payload.upper()


def _tamper_json(rng: random.Random, payload: str) -> str:
    parts = payload.split(".")
    if len(parts) != 3:
        return payload[::-1]
    try:
        body = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return payload[::-1]
    values: list[object] = [None, -1, 2**70, 1.5, "", "x" * 300, [], {}, True, "🙂", 1, 2, 3, "green", "red",
                            False, HPR]
    key = rng.choice([*body, "extra", "v", "trv", "star", "hpr", "idh"])
    body[key] = rng.choice(values)
    raw = json.dumps(body, ensure_ascii=rng.random() < 0.5).encode()
    return ".".join((parts[0], base64.urlsafe_b64encode(raw).decode().rstrip("="), parts[2]))


def random_payload(rng: random.Random) -> str | bytes:
    """Unstructured garbage: bytes, unicode, digits, near-prefixes."""
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 600))
    if kind == 1:
        return "".join(chr(rng.randrange(0, 0x110000)) for _ in range(rng.randrange(0, 200))).encode(
            "utf-8", "surrogatepass"
        )
    if kind == 2:
        return "".join(rng.choice("0123456789Xx -") for _ in range(rng.randrange(10, 24)))
    if kind == 3:
        prefix = rng.choice(("CKP1.", "HCT1.", "HC1:", "CKR1.", "HC1", "CKP1"))
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 $%*+-./:_="
        return prefix + "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 400)))
    return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(0, 100)))


def payloads(seeds: Seeds, count: int, seed: int) -> Iterator[tuple[str, str | bytes]]:
    """`count` (category, payload) pairs, deterministic for a seed."""
    rng = random.Random(seed)
    for _ in range(count):
        roll = rng.random()
        if roll < 0.55:
            yield "mutated", mutate(rng, rng.choice(seeds.payloads))
        elif roll < 0.65:
            yield "wrong_signature", rng.choice(seeds.forged)
        elif roll < 0.70:
            yield "valid", rng.choice(seeds.payloads)
        else:
            yield "random", random_payload(rng)


def run(count: int, seed: int) -> tuple[Counter[str], list[str]]:
    """Verify `count` payloads; verdict kinds per category and any exceptions (which must be none)."""
    seeds = make_seeds()
    tally: Counter[str] = Counter()
    errors: list[str] = []
    for category, payload in payloads(seeds, count, seed):
        try:
            # _verify, not verify: bypass the catch-all safety net so that every exception shows.
            verdict = seeds.verifier._verify(payload, seeds.now)
        except Exception as exc:
            errors.append(f"{category}: {type(exc).__name__}: {exc!r:.200} on {payload[:80]!r}")
            continue
        if not isinstance(verdict, Verdict):
            errors.append(f"{category}: returned {type(verdict).__name__}")
            continue
        tally[f"{category}:{verdict.kind}:{'valid' if verdict.valid else 'refused'}"] += 1
        if category == "wrong_signature" and verdict.valid:
            errors.append(f"forged payload accepted: {payload[:80]!r}")
    seeds.verifier.close()
    return tally, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    tally, errors = run(args.count, args.seed)
    elapsed = time.perf_counter() - started
    print(f"{'category:kind:outcome':<40} {'count':>8}")
    for key, n in sorted(tally.items()):
        print(f"{key:<40} {n:>8}")
    print(f"payloads {args.count}, exceptions {len(errors)}, {elapsed:.1f} s ({args.count / elapsed:.0f}/s)")
    for line in errors[:20]:
        print("  " + line)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
