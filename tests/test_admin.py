"""kiosk-admin keygen and the console entry points."""

import stat
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk import admin

BIN = Path(sys.executable).parent


def test_keygen_writes_private_0600_and_matching_public(tmp_path: Path) -> None:
    path = tmp_path / "office.key"
    assert admin.main(["keygen", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    public = serialization.load_pem_public_key((tmp_path / "office.key.pub").read_bytes())
    assert isinstance(private, Ed25519PrivateKey) and isinstance(public, Ed25519PublicKey)
    public.verify(private.sign(b"pass"), b"pass")


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "office.key"
    assert admin.main(["keygen", str(path)]) == 0
    before = path.read_bytes()
    assert admin.main(["keygen", str(path)]) == 1
    assert path.read_bytes() == before
    assert admin.main(["keygen", "--force", str(path)]) == 0
    assert path.read_bytes() != before


def test_console_scripts_installed() -> None:
    for name in ("kiosk", "kiosk-admin", "kiosk-collector"):
        result = subprocess.run([str(BIN / name), "--version"], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0 and "0.1.0" in result.stdout, (name, result.stderr)
