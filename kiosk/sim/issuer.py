"""The simulator's office and health authority: the keys, the codes each person shows, and their frames."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Any

import numpy as np
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from checkpoint.keys import kid_for
from checkpoint.passes import issue_pass
from checkpoint.tokens import issue_token
from kiosk.credentials.verify import SIMULATION_SITE_KEY
from kiosk.sim.scenario import Person

FRAME_W, FRAME_H = 640, 480


class Issuer:
    """The simulator's own office and health-authority keys, trusted by the emulated kiosk."""

    def __init__(self) -> None:
        self.office, self.health, self.stranger = (Ed25519PrivateKey.generate() for _ in range(3))
        self.office_kid = kid_for(self.office.public_key())
        self.health_kid = kid_for(self.health.public_key())
        self.revoked: set[str] = set()

    def idh(self, index: int) -> str:
        """A stable keyed hash standing for person `index`'s ID number."""
        return hmac.new(SIMULATION_SITE_KEY, f"simulated person {index}".encode(), hashlib.sha256).hexdigest()

    def hpr(self, index: int) -> str:
        """The stand-in platform's own reference for person `index` (opaque to kiosks and offices)."""
        return "hpr-" + hashlib.sha256(f"platform person {index}".encode()).hexdigest()[:28]

    def codes(self, index: int, person: Person, arrival: Any) -> list[str]:
        """The QR payloads person `index` shows when arriving at `arrival` (aware datetime).

        A person whose health code carries a travel card (v2) holds a v2 pass naming their `hpr`; a
        `borrowed` code is signed for someone else (index -1-index), by `idh` (v1) or `hpr` (v2).
        """
        texts = list(person.codes)
        idh = self.idh(index)
        v2 = person.health is not None and person.health.travel is not None
        if person.pass_ is not None:
            spec = person.pass_
            pid = f"P-{index:05d}"
            nbf = arrival + timedelta(seconds=spec.valid_from_s)
            key = self.stranger if spec.forged else self.office
            texts.append(issue_pass(key, self.office_kid, pid=pid, cat=spec.cat, hh=spec.hh, name="张*",
                                    idh=idh, nbf=nbf, exp=nbf + timedelta(seconds=spec.valid_for_s),
                                    hpr=self.hpr(index) if v2 else None))
            if spec.revoked:
                self.revoked.add(pid)
        if person.health is not None:
            health = person.health
            iat = arrival - timedelta(seconds=health.age_s)
            key = self.stranger if health.forged else self.health
            holder = -1 - index if health.borrowed else index
            texts.append(issue_token(
                key, self.health_kid, st=health.status, iat=iat, exp=iat + timedelta(hours=1),
                idh=None if v2 else self.idh(holder), trv=health.travel, star=health.star,
                hpr=self.hpr(holder) if v2 else None,
            ))
        if person.id_number is not None:
            texts.append(person.id_number)
        return texts


def render(texts: list[str]) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """A 640×480 gray frame showing the codes side by side, as a phone screen held up to the camera."""
    frame = np.full((FRAME_H, FRAME_W), 180, np.uint8)
    slot_w = FRAME_W // len(texts)
    for i, text in enumerate(texts):
        matrix = np.array(segno.make(text, error="m", micro=False).matrix, dtype=bool)
        size = matrix.shape[0] + 8  # four modules of quiet zone on each side
        scale = max(1, min((slot_w - 8) // size, (FRAME_H - 8) // size, 6))
        tile = np.full((size, size), 255, np.uint8)
        tile[4:-4, 4:-4] = np.where(matrix, 0, 255)
        image = np.kron(tile, np.ones((scale, scale), np.uint8))
        h, w = image.shape
        top, left = (FRAME_H - h) // 2, i * slot_w + (slot_w - w) // 2
        frame[top : top + h, left : left + w] = image
    return frame
