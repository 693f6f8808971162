"""The health platform's ID lookup for the office: the platform's own person reference (`hpr`) of a resident.

The office asks the same `http` platform the kiosks ask (DESIGN §3), by the site-keyed ID hash, and signs the
`hpr` it answers into a v2 pass (CKP1 v2), which binds the resident's health codes to the pass.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from checkpoint.signed import PLATFORM_REF_PATTERN

MAX_BODY = 64 * 1024
_PLATFORM_REF = re.compile(PLATFORM_REF_PATTERN)


class PlatformError(Exception):
    """The platform gave no usable `hpr`; the message says why in one line."""


def lookup_hpr(url: str, idh: str, *, token: str | None = None, timeout_s: float = 5.0) -> str:
    """POST `{"idh": idh}` to the platform and return the `hpr` of its answer; raises PlatformError."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise PlatformError("--platform-url: expected an http:// or https:// URL")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps({"idh": idh}).encode("ascii"), headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            data = response.read(MAX_BODY + 1)
    except urllib.error.HTTPError as exc:
        detail = "the platform does not know this person" if exc.code in (404, 422) else f"HTTP {exc.code}"
        raise PlatformError(f"platform lookup: {detail}") from None
    except (OSError, ValueError) as exc:
        raise PlatformError(f"platform lookup: {type(exc).__name__}: {str(exc)[:120]}") from None
    if len(data) > MAX_BODY:
        raise PlatformError("platform lookup: answer too large")
    try:
        doc = json.loads(data)
    except ValueError:
        raise PlatformError("platform lookup: answer is not JSON") from None
    hpr = doc.get("hpr") if isinstance(doc, dict) else None
    if not isinstance(hpr, str) or not _PLATFORM_REF.fullmatch(hpr):
        raise PlatformError("platform lookup: the answer has no valid hpr")
    return hpr
