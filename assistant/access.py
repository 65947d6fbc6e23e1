"""Who may use the service: API keys and web-login passwords, stored only as salted hashes.

It lives in the core because more than one front-end checks the same store (the HTTP API,
the web app's login, and the administrators of the 数据管理 tab, whose credentials carry `admin`). Keys are 256-bit random strings, so one salted
SHA-256 is enough and cheap on every request; passwords are chosen by people and get scrypt.
Keys can also come from the environment (`DUTY_API_KEYS`, for containers and secret
managers), and an administrator's password from `DUTY_ADMIN_PASSWORD` (user `admin`): those are
hashed in memory and never written anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from filelock import FileLock

from assistant.settings import Settings

KEY_PREFIX = "duty-"
NAME = re.compile(r"[\w.@-]{1,64}")  # \w includes Chinese: names such as 二工镇-值班室 are fine
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class AccessError(ValueError):
    """A request to the store that cannot be carried out (bad name, duplicate, unknown)."""


@dataclass(frozen=True)
class Credential:
    name: str
    kind: Literal["key", "password"]
    salt: str  # hex
    hash: str  # hex
    created: str = ""
    admin: bool = False  # may change the data (the 数据管理 tab)

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.hash, _digest(self.kind, secret, bytes.fromhex(self.salt)))


def _digest(kind: str, secret: str, salt: bytes) -> str:
    data = secret.encode("utf-8")
    if kind == "password":
        return hashlib.scrypt(data, salt=salt, **SCRYPT).hex()
    return hashlib.sha256(salt + data).hexdigest()


def _credential(name: str, kind: Literal["key", "password"], secret: str, admin: bool = False) -> Credential:
    salt = secrets.token_bytes(16)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    return Credential(name, kind, salt.hex(), _digest(kind, secret, salt), created, admin)


ADMIN_USER = "admin"


class AccessStore:
    """The credentials file (JSON, mode 0600), re-read when it changes so `keys add` needs no restart."""

    def __init__(self, path: Path, env_keys: str = "", admin_password: str = ""):
        self.path = Path(path)
        self._env = [
            _credential(f"env-{i}", "key", key)
            for i, key in enumerate((k.strip() for k in env_keys.split(",")), 1)
            if key
        ]
        if admin_password:
            self._env.append(_credential(ADMIN_USER, "password", admin_password, admin=True))
        self._stamp: tuple[int, int] | None = None
        self._stored: list[Credential] = []
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessStore:
        password = settings.admin_password.get_secret_value() if settings.admin_password else ""
        return cls(settings.access_file, settings.api_keys, password)

    # -- reading -------------------------------------------------------------------------------

    @property
    def credentials(self) -> list[Credential]:
        with self._lock:
            try:
                stat = self.path.stat()
                stamp = (stat.st_mtime_ns, stat.st_size)
            except FileNotFoundError:
                stamp = None
            if stamp != self._stamp:
                self._stored = self._read() if stamp else []
                self._stamp = stamp
            return [*self._stored, *self._env]

    def _read(self) -> list[Credential]:
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return [Credential(**record) for record in data.get("credentials", [])]

    @property
    def has_keys(self) -> bool:
        return any(c.kind == "key" for c in self.credentials)

    def check_key(self, key: str) -> str | None:
        """The name the API key belongs to, or None."""
        if not key:
            return None
        for credential in self.credentials:
            if credential.kind == "key" and credential.matches(key):
                return credential.name
        return None

    def check_login(self, name: str, secret: str) -> bool:
        """Web login: the name with its password, or with one of its API keys."""
        return any(c.name == name and c.matches(secret) for c in self.credentials if secret)

    def check_admin(self, name: str, secret: str) -> bool:
        """An administrator's login: an admin credential of that name with this secret."""
        return any(c.admin and c.name == name and c.matches(secret) for c in self.credentials if secret)

    @property
    def has_admins(self) -> bool:
        """Whether anyone can log in as administrator (without one the data tab stays hidden)."""
        return any(c.admin for c in self.credentials)

    # -- changing (the CLI) --------------------------------------------------------------------

    def add_key(self, name: str, *, admin: bool = False) -> str:
        """Store a new key's hash under `name`; returns the key, which is shown once and never stored."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        self._add(_credential(name, "key", key, admin))
        return key

    def set_password(self, name: str, password: str, *, admin: bool = False) -> None:
        if len(password) < 8:
            raise AccessError("密码至少 8 个字符")
        self._change(
            lambda stored: (
                [c for c in stored if not (c.name == name and c.kind == "password")]
                + [_credential(self._valid(name), "password", password, admin)]
            )
        )

    def remove(self, name: str) -> int:
        """Remove every credential of `name`; returns how many there were."""
        removed = 0

        def without(stored: list[Credential]) -> list[Credential]:
            nonlocal removed
            kept = [c for c in stored if c.name != name]
            removed = len(stored) - len(kept)
            return kept

        self._change(without)
        return removed

    def _add(self, credential: Credential) -> None:
        def add(stored: list[Credential]) -> list[Credential]:
            self._valid(credential.name)
            if any(c.name == credential.name and c.kind == "key" for c in stored):
                raise AccessError(f"已有名为 {credential.name} 的密钥；先 `keys remove {credential.name}`")
            return [*stored, credential]

        self._change(add)

    @staticmethod
    def _valid(name: str) -> str:
        if not NAME.fullmatch(name):
            raise AccessError(f"名称 {name!r} 无效：1–64 个字母、数字、汉字或 . _ @ -")
        return name

    def _change(self, edit) -> None:
        """Read, edit and atomically rewrite the file under a lock (two `keys add` at once stay consistent)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            stored = self._read() if self.path.exists() else []
            records = [asdict(c) for c in edit(stored)]
            temporary = self.path.with_suffix(".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"credentials": records}, handle, ensure_ascii=False, indent=1)
            os.replace(temporary, self.path)
