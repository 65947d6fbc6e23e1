"""Who may change the data: administrators, checked against hashed secrets.

Secrets come from `admin_file` (lines `user:scrypt$…`, made by `duty-assistant admin-hash`)
or from `DUTY_ADMIN_PASSWORD` for the user `admin`, hashed as soon as it is loaded; no
plain secret is kept or sent to a page.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from assistant.settings import Settings

_N, _R, _P = 2**14, 8, 1
ENV_USER = "admin"


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P)
    return f"scrypt${salt.hex()}${digest.hex()}"


def _matches(secret: str, stored: str) -> bool:
    scheme, salt, _ = (stored.split("$") + ["", ""])[:3]
    if scheme != "scrypt" or not salt:
        return False
    try:
        return hmac.compare_digest(hash_secret(secret, bytes.fromhex(salt)), stored)
    except ValueError:
        return False


class Admins:
    def __init__(self, hashes: dict[str, str]):
        self._hashes = hashes

    @classmethod
    def load(cls, settings: Settings) -> Admins:
        hashes: dict[str, str] = {}
        if settings.admin_file is not None:
            for line in settings.admin_file.read_text(encoding="utf-8").splitlines():
                user, _, stored = line.strip().partition(":")
                if user and stored and not user.startswith("#"):
                    hashes[user] = stored
        if settings.admin_password is not None and settings.admin_password.get_secret_value():
            hashes.setdefault(ENV_USER, hash_secret(settings.admin_password.get_secret_value()))
        return cls(hashes)

    def __bool__(self) -> bool:
        """Whether anyone can log in at all (without administrators the data tab stays hidden)."""
        return bool(self._hashes)

    def verify(self, user: str, secret: str) -> bool:
        stored = self._hashes.get(user or "")
        if stored is None:
            _matches(secret or "", hash_secret("-"))  # same work for unknown users: no timing hint
            return False
        return _matches(secret or "", stored)
