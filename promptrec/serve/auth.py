"""API keys for `promptrec serve`: bearer tokens with scopes, kept only as SHA-256 digests.

Keys come from a JSON file written by ``promptrec keys create`` (name, digest, scopes, optional
rate limit; the token itself is printed once and never stored) and/or from the environment
variable ``PROMPTREC_API_KEYS``: ``TOKEN`` or ``TOKEN=scope,scope`` entries separated by ``;``
(events:write and recommendations:read when none are given; admin only when named). Tokens are random 256-bit strings, so a plain SHA-256 digest
cannot be reversed by guessing; lookups compare every stored digest in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

EVENTS_WRITE = "events:write"
RECOMMENDATIONS_READ = "recommendations:read"
ADMIN = "admin"  # reload and roll back model versions
DEFAULT_SCOPES = (EVENTS_WRITE, RECOMMENDATIONS_READ)  # a key without named scopes; admin is given explicitly
SCOPES = DEFAULT_SCOPES + (ADMIN,)
ENV_VAR = "PROMPTREC_API_KEYS"
MIN_TOKEN_CHARS = 24


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (43 URL-safe characters, 256 bits)."""
    return "prk_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ApiKey:
    """One key as the server keeps it: no token, only its digest."""

    name: str
    sha256: str
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    rate_per_s: float | None = None  # None: the server's default limit

    def __post_init__(self) -> None:
        unknown = sorted(set(self.scopes) - set(SCOPES))
        if unknown or not self.scopes:
            raise ValueError(f"API key {self.name!r}: scopes must be among {list(SCOPES)}, got {list(self.scopes)}")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"API key {self.name!r}: 'sha256' must be the 64-hex-digit SHA-256 of the token")


@dataclass
class KeyRing:
    """The keys a server accepts; empty means authentication is off."""

    keys: list[ApiKey] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def lookup(self, token: str) -> ApiKey | None:
        """The key whose digest matches ``token``; every digest is compared (no early exit)."""
        presented, found = digest(token), None
        for key in self.keys:
            if hmac.compare_digest(presented, key.sha256):
                found = key
        return found

    @classmethod
    def load(cls, path: str | Path | None = None, env: str | None = None) -> "KeyRing":
        """Keys from a key file and/or ``PROMPTREC_API_KEYS`` (``env`` overrides the variable's value)."""
        keys = read_key_file(path) if path else []
        keys += parse_env_keys(os.environ.get(ENV_VAR, "") if env is None else env)
        names = [k.name for k in keys]
        if len(set(names)) != len(names):
            raise ValueError(f"API key names must be unique; got {names}")
        return cls(keys)


def parse_env_keys(value: str) -> list[ApiKey]:
    """``TOKEN[=scope,scope];TOKEN...`` -> keys named env-1, env-2, ... (tokens hashed at once)."""
    keys = []
    for n, entry in enumerate((e.strip() for e in value.split(";")), 1):
        if not entry:
            continue
        token, _, scopes = entry.partition("=")
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(f"{ENV_VAR}: entry {n} has a token of {len(token)} characters; use at least "
                             f"{MIN_TOKEN_CHARS} random characters (`promptrec keys create` makes one)")
        keys.append(ApiKey(f"env-{n}", digest(token),
                           tuple(s.strip() for s in scopes.split(",") if s.strip()) if scopes else DEFAULT_SCOPES))
    return keys


def read_key_file(path: str | Path) -> list[ApiKey]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"API key file {path} not found; create keys with `promptrec keys create --file {path}`")
    try:
        entries = json.loads(path.read_text() or "[]")
        return [ApiKey(e["name"], e["sha256"], tuple(e.get("scopes", DEFAULT_SCOPES)), e.get("rate_per_s")) for e in entries]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"API key file {path}: expected a JSON list of {{name, sha256, scopes}} objects "
                         f"({type(exc).__name__}: {exc}); recreate it with `promptrec keys create`") from None


def add_key(path: str | Path, name: str, scopes: tuple[str, ...] = DEFAULT_SCOPES, rate_per_s: float | None = None) -> str:
    """Create a key, append its digest to the key file (created 0600 if absent); return the token."""
    path = Path(path)
    keys = read_key_file(path) if path.exists() else []
    if name in {k.name for k in keys}:
        raise ValueError(f"{path} already has a key named {name!r}; choose another name or remove that entry")
    token = new_token()
    keys.append(ApiKey(name, digest(token), tuple(scopes), rate_per_s))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump([{k: v for k, v in asdict(key).items() if v is not None} for key in keys], f, indent=1)
    return token
