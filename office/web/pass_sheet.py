"""What the 出入证 Passes page shares: the app's shape it uses, the printed sheet of stored passes, the form
fields' checks, and signing and publishing a site's revocation list (retained, on the site's revocations
topic, through the configured broker)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from markupsafe import Markup

from checkpoint.configtypes import SecretError
from checkpoint.revocation import issue_revocation
from checkpoint.signed import PLATFORM_REF_PATTERN
from checkpoint.topics import revocations_topic
from office.admin.passes import SignedPass, pass_cards
from office.mqtt import PublishError
from office.store.base import PassRecord
from office.web.core import OfficeWeb, WebSettings

PID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")  # checkpoint.signed.SafeId
HOUSEHOLD = PID
PLATFORM_REF = re.compile(PLATFORM_REF_PATTERN.removeprefix("^").removesuffix("$"))


class PassKeyMissing(Exception):
    """The site has no pass key (or it cannot be read): nothing can be signed for it."""


def signing_key(settings: WebSettings, site: str) -> Ed25519PrivateKey:
    """The site's pass key; PassKeyMissing naming why not."""
    keys = settings.sites.get(site)
    if keys is None:
        raise PassKeyMissing(f"no site {site!r} in the config")
    try:
        key = keys.pass_key()
    except SecretError as exc:
        raise PassKeyMissing(str(exc)) from None
    if key is None:
        raise PassKeyMissing(f"sites.{site}: no pass_key_file")
    return key


def signing_sites(settings: WebSettings) -> list[str]:
    """The sites with a pass key configured (readable or not: a bad file is reported when used)."""
    found = []
    for name, keys in sorted(settings.sites.items()):
        try:
            if keys.pass_key() is not None:
                found.append(name)
        except SecretError:
            found.append(name)
    return found


def pids_in(text: str) -> tuple[list[str], list[str]]:
    """The pids in `text` (separated by spaces, commas or lines), in order, once each; and the bad ones."""
    words = list(dict.fromkeys(w for w in re.split(r"[\s,，、;；]+", text) if w))
    return [w for w in words if PID.fullmatch(w)], [w[:40] for w in words if not PID.fullmatch(w)]


def signed(record: PassRecord) -> SignedPass | None:
    """The stored pass with its QR text; None for one imported without it."""
    p = record.issued
    if record.text is None:
        return None
    return SignedPass(pid=p.pid, cat=p.cat, hh=p.hh, name_masked=p.name_masked, idh=p.idh, nbf=p.nbf,
                      exp=p.exp, kid=p.kid, text=record.text)


def sheet_markup(records: Sequence[PassRecord], settings: WebSettings) -> Markup:
    """The cards of `records` (those with a QR text), each with its site's community name."""
    groups: dict[str, list[SignedPass]] = {}
    for record in records:
        card = signed(record)
        if card is not None:
            groups.setdefault(record.site or "", []).append(card)
    parts = []
    for site, cards in groups.items():
        keys = settings.sites.get(site)
        parts.append(pass_cards(cards, settings.tz, keys.name if keys is not None and keys.name else site))
    return Markup("\n".join(parts))  # pass_cards escapes every field


def publish_revocations(web: OfficeWeb, site: str, serial: int, revoked: Sequence[str]) -> str | None:
    """Sign the site's whole list as `serial` and publish it retained; None when the broker took it, else
    why not (the list stays stored, to publish again)."""
    now = web.now()
    broker = web.settings.broker
    try:
        key = signing_key(web.settings, site)
        if broker is None:
            raise PublishError("no broker configured")
        text = issue_revocation(key, None, site=site, serial=serial, iat=now, revoked=revoked)
        broker.publish(revocations_topic(site), text, retain=True)
    except (PassKeyMissing, PublishError, ValueError) as exc:
        return str(exc)
    web.store.revocations_published(site, serial, at=now)
    return None
