"""Deterministic 640×480 grayscale camera frames of phone screens showing QR credentials, or no code."""

from __future__ import annotations

import base64
import json
import math

import cv2
import numpy as np
import numpy.typing as npt
import segno

from checkpoint.idnumber import check_char

WIDTH, HEIGHT = 640, 480
CATEGORIES = ("moire", "glare", "low_contrast", "perspective", "blur", "small", "pair", "empty")

Frame = npt.NDArray[np.uint8]
Image = npt.NDArray[np.float32]
Modules = npt.NDArray[np.uint8]
Sample = tuple[Frame, list[str]]

_BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_SHORT_TEXTS = (
    "P-00017",
    "gate-north",
    "https://hc.example.gov.cn/q/8F3KQ2ZP",
    "出入证 9栋23单元301",
    "VISITOR 2026-03-19 9-23-301",
)
_REGIONS = ("110101", "310104", "370102", "440305", "510107")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _base45(data: bytes) -> str:
    out = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        out += [_BASE45[n % 45], _BASE45[n // 45 % 45], _BASE45[n // 2025]]
    if len(data) % 2:
        out += [_BASE45[data[-1] % 45], _BASE45[data[-1] // 45]]
    return "".join(out)


def _signed(prefix: str, fields: dict[str, object], rng: np.random.Generator) -> str:
    body = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    return f"{prefix}.{_b64url(body)}.{_b64url(rng.bytes(64))}"


def pass_payload(rng: np.random.Generator) -> str:
    """A CKP1 pass shaped like the office's, with a random (invalid) signature."""
    nbf = 1_760_000_000 + int(rng.integers(0, 10_000_000))
    fields: dict[str, object] = {
        "v": 1, "kid": "office-1", "pid": f"P-{int(rng.integers(1, 99_999)):05d}",
        "cat": str(rng.choice(["green", "blue", "red", "pink"])),
        "name": str(rng.choice(["张*", "李**", "W*** F."])),
        "idh": _b64url(rng.bytes(16)), "nbf": nbf, "exp": nbf + 90 * 86_400,
    }
    if rng.random() < 0.5:
        fields["hh"] = f"{rng.integers(1, 20)}-{rng.integers(1, 40)}-{rng.integers(101, 2_405)}"
    return _signed("CKP1", fields, rng)


def token_payload(rng: np.random.Generator) -> str:
    """An HCT1 health-code token with a random (invalid) signature."""
    iat = 1_760_000_000 + int(rng.integers(0, 10_000_000))
    status = str(rng.choice(["green", "green", "yellow", "red"]))
    fields: dict[str, object] = {
        "v": 1, "kid": "hca-1", "st": status, "idh": _b64url(rng.bytes(16)), "iat": iat, "exp": iat + 86_400,
    }
    return _signed("HCT1", fields, rng)


def dcc_payload(rng: np.random.Generator) -> str:
    """An HC1: string of DCC length (~500 base45 characters; the bytes are random, not COSE)."""
    return "HC1:" + _base45(b"\x78\xda" + rng.bytes(int(rng.integers(300, 360))))


def id_payload(rng: np.random.Generator) -> str:
    """An 18-digit resident ID number with a valid check character."""
    born = f"{rng.integers(1935, 2006)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
    first17 = f"{rng.choice(_REGIONS)}{born}{rng.integers(0, 1000):03d}"
    return first17 + check_char(first17)


def payload(rng: np.random.Generator) -> str:
    """One realistic payload: a pass, a token, a DCC, a short text or an ID number."""
    kind = int(rng.choice(5, p=[0.35, 0.25, 0.15, 0.10, 0.15]))
    if kind == 4:
        return str(rng.choice(_SHORT_TEXTS))
    return (pass_payload, token_payload, dcc_payload, id_payload)[kind](rng)


def modules(text: str) -> Modules:
    """The code's module matrix (1 = dark) with its 4-module quiet zone."""
    qr = segno.make(text, error="m", micro=False)
    return np.pad(np.asarray(qr.matrix, dtype=np.uint8), 4)


def _phone(code: Modules, px: int, rng: np.random.Generator) -> tuple[Image, tuple[float, float]]:
    """A lit portrait phone screen (1 = white) showing code; also the code's centre on the screen."""
    side = code.shape[0] * px
    width = int(side * rng.uniform(1.15, 1.4))
    height = int(width * rng.uniform(1.7, 2.0))
    bezel = max(4, width // 25)
    screen = np.full((height + 2 * bezel, width + 2 * bezel), 0.04, np.float32)
    screen[bezel:-bezel, bezel:-bezel] = rng.uniform(0.9, 1.0)
    screen[bezel : bezel + height // 9, bezel:-bezel] = rng.uniform(0.25, 0.65)
    top = bezel + int(height * rng.uniform(0.2, 0.3))
    left = bezel + (width - side) // 2
    screen[top : top + side, left : left + side] = np.kron(1.0 - code, np.ones((px, px), np.float32))
    for row in range(top + side + px * 3, bezel + height - px * 6, px * 6):
        length = int(width * rng.uniform(0.3, 0.8))
        screen[row : row + px * 2, left : left + min(length, side)] = rng.uniform(0.2, 0.5)
    return screen, (left + side / 2, top + side / 2)


def _subpixels(screen: Image, gap: float) -> Image:
    """The screen as a camera sees its pixel grid: each pixel a 3×3 cell with a dark gap row and column."""
    cell = np.ones((3, 3), np.float32)
    cell[2, :] = cell[:, 2] = gap
    return np.kron(screen, cell).astype(np.float32)


def _place(
    canvas: Image, screen: Image, anchor: tuple[float, float], centre: tuple[float, float], scale: float,
    angle_deg: float, tilt: float, rng: np.random.Generator, *, antialias: bool = True,
) -> None:
    """Draw screen onto canvas so that anchor lands on centre, scaled, rotated and with perspective tilt."""
    h, w = screen.shape
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], np.float32)
    dst = (corners - np.array(anchor, np.float32)) * scale @ rot.T + np.array(centre, np.float32)
    dst += rng.uniform(-tilt, tilt, dst.shape).astype(np.float32) * scale * max(w, h) * 0.5
    if antialias and scale < 1.0:
        screen = np.asarray(cv2.GaussianBlur(screen, (0, 0), 0.45 / scale), np.float32)
    matrix = cv2.getPerspectiveTransform(corners, dst.astype(np.float32))
    cv2.warpPerspective(screen, matrix, (WIDTH, HEIGHT), dst=canvas, flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_TRANSPARENT)


def scene(rng: np.random.Generator) -> Image:
    """A gate-side background in 0..1: lit wall and sky, doors and signs, a figure, striped notices."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    img: Image = (0.45 + 0.2 * (xx * math.cos(angle) + yy * math.sin(angle)) / WIDTH).astype(np.float32)
    img += 0.05 * np.sin(yy / rng.uniform(40, 120) + rng.uniform(0, 6))
    for _ in range(int(rng.integers(4, 10))):
        x0, y0 = int(rng.integers(-50, WIDTH)), int(rng.integers(-50, HEIGHT))
        x1, y1 = x0 + int(rng.integers(30, 260)), y0 + int(rng.integers(30, 260))
        cv2.rectangle(img, (x0, y0), (x1, y1), float(rng.uniform(0.1, 0.9)), -1)
    for _ in range(int(rng.integers(0, 3))):
        x0, y0 = int(rng.integers(0, WIDTH - 120)), int(rng.integers(0, HEIGHT - 80))
        cv2.rectangle(img, (x0, y0), (x0 + 120, y0 + 80), 0.9, -1)
        for row in range(y0 + 8, y0 + 72, 7):
            cv2.line(img, (x0 + 8, row), (x0 + int(rng.integers(40, 112)), row), 0.2, 2)
    centre = (int(rng.integers(150, 490)), int(rng.integers(250, 420)))
    cv2.ellipse(img, centre, (int(rng.integers(60, 110)), int(rng.integers(140, 220))), 0, 0, 360,
                float(rng.uniform(0.1, 0.4)), -1)
    cv2.circle(img, (centre[0], centre[1] - 190), int(rng.integers(35, 55)), float(rng.uniform(0.3, 0.7)), -1)
    return img


def _camera(img: Image, rng: np.random.Generator, *, blur: float, noise: float, level: float) -> Frame:
    """Optics blur, exposure, shot and read noise, the ISP's demosaic and denoise smoothing, 8-bit output."""
    lit = np.asarray(cv2.GaussianBlur(img, (0, 0), blur), np.float32) * level + rng.uniform(5, 25)
    grain = rng.normal(0.0, noise, lit.shape) * np.sqrt(np.clip(lit, 1, None) / 128)
    out = np.asarray(cv2.GaussianBlur((lit + grain).astype(np.float32), (0, 0), rng.uniform(0.5, 0.7)))
    frame: Frame = np.clip(out, 0, 255).astype(np.uint8)
    return frame


def _one_code(category: str, text: str, rng: np.random.Generator) -> Frame:
    """A frame with one phone showing text's code, degraded the way category says."""
    code = modules(text)
    canvas = scene(rng)
    module = rng.uniform(2.6, 4.5)
    angle = rng.uniform(-20, 20)
    tilt = rng.uniform(0.0, 0.04)
    blur, noise, level = rng.uniform(0.3, 0.6), rng.uniform(1.5, 3.5), rng.uniform(170, 230)
    if category == "small":
        module = rng.uniform(1.3, 2.3)
    elif category == "perspective":
        tilt, angle = rng.uniform(0.08, 0.2), rng.uniform(-35, 35)
    elif category == "blur":
        blur = rng.uniform(0.9, 1.8)
    px = 4
    screen, anchor = _phone(code, px, rng)
    if category == "low_contrast":
        screen = 0.55 + rng.uniform(0.08, 0.18) * (screen - 0.5)
        level = rng.uniform(110, 170)
    if category == "moire":
        screen, px = _subpixels(screen, rng.uniform(0.25, 0.6)), px * 3
        anchor = (anchor[0] * 3, anchor[1] * 3)
        sy, sx = np.mgrid[0 : screen.shape[0], 0 : screen.shape[1]].astype(np.float32)
        phi, period = rng.uniform(0, math.pi), rng.uniform(12, 40) * px / module
        bands = 0.5 * (1 + np.sin(2 * math.pi * (sx * math.cos(phi) + sy * math.sin(phi)) / period))
        screen *= 1 - rng.uniform(0.15, 0.3) * bands
    spread = abs(math.cos(math.radians(angle))) + abs(math.sin(math.radians(angle)))
    module = min(module, (HEIGHT - 16) / (code.shape[0] * spread))
    scale = module / px
    reach = code.shape[0] * module * spread / 2 + 8
    centre = (rng.uniform(reach, max(reach, WIDTH - reach)), rng.uniform(reach, max(reach, HEIGHT - reach)))
    _place(canvas, screen, anchor, centre, scale, angle, tilt, rng, antialias=category != "moire")
    if category == "glare":
        yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
        gx, gy = centre[0] + rng.uniform(-60, 60), centre[1] + rng.uniform(-60, 60)
        wx, wy = rng.uniform(15, 60), rng.uniform(15, 60)
        spot = np.exp(-((xx - gx) ** 2 / (2 * wx**2) + (yy - gy) ** 2 / (2 * wy**2)))
        canvas += (rng.uniform(0.5, 1.1) * spot).astype(np.float32)
        canvas += rng.uniform(0.05, 0.25)
    return _camera(canvas, rng, blur=blur, noise=noise, level=level)


def _pair(health: str, pass_text: str, rng: np.random.Generator) -> Frame:
    """A frame with two phones side by side: a health code on the left, a pass on the right."""
    canvas = scene(rng)
    for text, x in ((health, rng.uniform(0.22, 0.28)), (pass_text, rng.uniform(0.72, 0.78))):
        code = modules(text)
        module = min(rng.uniform(2.4, 3.2), 0.45 * WIDTH / code.shape[0])
        screen, anchor = _phone(code, 4, rng)
        centre = (x * WIDTH, rng.uniform(0.45, 0.55) * HEIGHT)
        _place(canvas, screen, anchor, centre, module / 4, rng.uniform(-8, 8), rng.uniform(0, 0.03), rng)
    noise, level = rng.uniform(1.5, 3.5), rng.uniform(170, 230)
    return _camera(canvas, rng, blur=rng.uniform(0.3, 0.6), noise=noise, level=level)


def _empty(rng: np.random.Generator) -> Frame:
    """A frame without a code: the scene, sometimes a phone showing an app screen, day or night noise."""
    canvas = scene(rng)
    if rng.random() < 0.5:
        screen, anchor = _phone(np.zeros((33, 33), np.uint8), 4, rng)
        centre = (rng.uniform(150, 490), rng.uniform(120, 360))
        _place(canvas, screen, anchor, centre, rng.uniform(0.5, 0.9), rng.uniform(-20, 20), 0.03, rng)
    night = rng.random() < 0.25
    noise = rng.uniform(4.0, 6.0) if night else rng.uniform(1.5, 3.5)
    level = rng.uniform(70, 110) if night else rng.uniform(170, 230)
    return _camera(canvas, rng, blur=rng.uniform(0.3, 0.6), noise=noise, level=level)


def generate(category: str, n: int, seed: int) -> list[Sample]:
    """n frames of category, each with the texts of its codes; the same seed gives the same frames."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")
    samples: list[Sample] = []
    for i in range(n):
        rng = np.random.default_rng([seed, CATEGORIES.index(category), i])
        if category == "empty":
            samples.append((_empty(rng), []))
        elif category == "pair":
            health = token_payload(rng) if rng.random() < 0.6 else dcc_payload(rng)
            pass_text = pass_payload(rng)
            samples.append((_pair(health, pass_text, rng), [health, pass_text]))
        else:
            text = payload(rng)
            samples.append((_one_code(category, text, rng), [text]))
    return samples
