"""DCC trust list: loading DSC certificates, their COSE key ids and key usage, and COSE signature checks."""

from __future__ import annotations

import base64
import binascii
import logging
from pathlib import Path
from typing import Annotated, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

log = logging.getLogger(__name__)

ES256: Final = -7
PS256: Final = -37
TRUST_SUFFIXES: Final = frozenset({".pem", ".der", ".crt", ".b64"})
MAX_CERT_FILE_BYTES: Final = 1 << 20

# The eHN OIDs, plus the variant with a stray ".0" that many member states' DSCs (and the vectors) carry.
_EKU_ROOTS: Final = ("1.3.6.1.4.1.1847.2021.1", "1.3.6.1.4.1.0.1847.2021.1")
_EKU_TYPES: Final = {"1": "t", "2": "v", "3": "r"}
DCC_TYPE_OIDS: Final = {f"{root}.{n}": t for root in _EKU_ROOTS for n, t in _EKU_TYPES.items()}


@asn1.sequence
class _Extension:
    extn_id: x509.ObjectIdentifier
    critical: bool | None
    extn_value: bytes


@asn1.sequence
class _TbsCertificate:
    version: Annotated[int | None, asn1.Explicit(0)]
    serial: int
    signature: asn1.TLV
    issuer: asn1.TLV
    validity: asn1.TLV
    subject: asn1.TLV
    spki: asn1.TLV
    issuer_uid: Annotated[asn1.BitString | None, asn1.Implicit(1)]
    subject_uid: Annotated[asn1.BitString | None, asn1.Implicit(2)]
    extensions: Annotated[list[_Extension] | None, asn1.Explicit(3)]


@asn1.sequence
class _KeyPurposes:
    purposes: list[x509.ObjectIdentifier]


def load_certificate(data: bytes | str) -> x509.Certificate:
    """A certificate from PEM, DER, or base64 DER text (bytes or str); ValueError on anything else."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
    text = raw.strip()
    try:
        if text.startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(text)
        if raw[:1] == b"\x30":
            try:
                return x509.load_der_x509_certificate(raw)
            except ValueError:
                pass
        return x509.load_der_x509_certificate(base64.b64decode(b"".join(text.split()), validate=True))
    except (ValueError, TypeError, binascii.Error, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a certificate ({type(exc).__name__})") from None


def load_trust_dir(path: Path) -> list[x509.Certificate]:
    """Every certificate in a directory's *.pem/*.der/*.crt/*.b64 files; bad files are logged and skipped."""
    certs: list[x509.Certificate] = []
    for file in sorted(path.iterdir()):
        if file.suffix.lower() not in TRUST_SUFFIXES or not file.is_file():
            continue
        try:
            if file.stat().st_size > MAX_CERT_FILE_BYTES:
                raise ValueError("file too large")
            data = file.read_bytes()
            if data.count(b"-----BEGIN CERTIFICATE-----") > 1:
                certs.extend(x509.load_pem_x509_certificates(data))
            else:
                certs.append(load_certificate(data))
        except (OSError, ValueError) as exc:
            log.warning("trust list: skipping %s: %s", file, exc)
    return certs


def key_id(cert: x509.Certificate) -> bytes:
    """The COSE kid of a DSC: the first 8 bytes of the SHA-256 of its DER."""
    return cert.fingerprint(hashes.SHA256())[:8]


def _der_sequence(content: bytes) -> bytes:
    """`content` wrapped in a DER SEQUENCE header."""
    n = len(content)
    if n < 0x80:
        return b"\x30" + bytes([n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\x30" + bytes([0x80 | len(size)]) + size + content


def _eku_from_der(cert: x509.Certificate) -> list[str] | None:
    """The EKU OIDs read from the raw TBS DER (for DSCs whose other extensions `cryptography` rejects)."""
    tbs = asn1.decode_der(_TbsCertificate, cert.tbs_certificate_bytes)
    for ext in tbs.extensions or []:
        if ext.extn_id == x509.oid.ExtensionOID.EXTENDED_KEY_USAGE:
            eku = asn1.decode_der(_KeyPurposes, _der_sequence(ext.extn_value))
            return [oid.dotted_string for oid in eku.purposes]
    return None


def extended_key_usage(cert: x509.Certificate) -> tuple[list[str] | None, str]:
    """The DSC's EKU OIDs (None when it has no EKU) and how they were read."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        return [oid.dotted_string for oid in eku], "EKU read normally"
    except x509.ExtensionNotFound:
        return None, "EKU read normally"
    except ValueError:
        pass
    try:
        return _eku_from_der(cert), "EKU read from raw DER"
    except (ValueError, TypeError) as exc:
        log.warning("DSC %s: extended key usage unreadable (%s); treated as absent", key_id(cert).hex(), exc)
        return None, "EKU unreadable, treated as absent"


def allowed_types(cert: x509.Certificate) -> tuple[frozenset[str], str]:
    """The DCC types (t, v, r) a DSC may sign, and how its EKU was read: all of them when it names none."""
    oids, how = extended_key_usage(cert)
    types = frozenset(DCC_TYPE_OIDS[oid] for oid in oids or [] if oid in DCC_TYPE_OIDS)
    return (types or frozenset(_EKU_TYPES.values())), how


def check_signature(cert: x509.Certificate, alg: object, data: bytes, signature: bytes) -> str | None:
    """None when `signature` by `cert` over `data` verifies under COSE `alg`, else why not."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return "DSC public key unreadable"
    try:
        if alg == ES256:
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
                return "ES256 needs a P-256 key"
            if len(signature) != 64:
                return f"ES256 signature has {len(signature)} bytes, not 64"
            r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
        elif alg == PS256:
            if not isinstance(key, rsa.RSAPublicKey):
                return "PS256 needs an RSA key"
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size)
            key.verify(signature, data, pss, hashes.SHA256())
        else:
            shown = alg if isinstance(alg, int) and abs(alg) < 1 << 16 else type(alg).__name__
            return f"unsupported alg {shown}"
    except InvalidSignature:
        return "signature does not verify"
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return f"signature check failed ({type(exc).__name__})"
    return None
