"""Curator accounts: secrets stored hashed (PBKDF2-SHA256) or plain, compared as bytes in constant
time, with a per-name limit on wrong attempts.

A per-user account in ``.streamlit/secrets.toml``::

    [curators]
    alice = "pbkdf2_sha256$200000$<salt hex>$<hash hex>"   # python -m ui.accounts  (asks for the secret)

The hash is ``hashlib.pbkdf2_hmac("sha256", secret_utf8, salt, iterations)`` (RFC 8018, PBKDF2).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets
import threading
import time

__all__ = ["hash_secret", "secret_matches", "AttemptLimiter"]

_PREFIX = "pbkdf2_sha256"


def hash_secret(secret: str, iterations: int = 200_000) -> str:
    salt = _secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), salt, iterations)
    return f"{_PREFIX}${iterations}${salt.hex()}${digest.hex()}"


def secret_matches(given: str, stored: str) -> bool:
    """Whether ``given`` is the secret ``stored`` (a :func:`hash_secret` string, or the secret itself);
    bytes compared in constant time, so any Unicode secret works."""
    if stored.startswith(_PREFIX + "$"):
        try:
            _, it, salt, digest = stored.split("$")
            calc = hashlib.pbkdf2_hmac("sha256", given.encode("utf-8"), bytes.fromhex(salt), int(it))
            return hmac.compare_digest(calc, bytes.fromhex(digest))
        except ValueError:
            return False
    return hmac.compare_digest(given.encode("utf-8"), stored.encode("utf-8"))


class AttemptLimiter:
    """At most ``max_attempts`` wrong secrets per name within ``window_s`` seconds."""

    def __init__(self, max_attempts: int = 5, window_s: float = 300.0) -> None:
        self.max_attempts, self.window_s = max_attempts, window_s
        self._tries: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def blocked_for(self, name: str) -> float:
        """Seconds until ``name`` may try again (0 if it may now)."""
        now = time.time()
        with self._lock:
            tries = [t for t in self._tries.get(name, []) if now - t < self.window_s]
            self._tries[name] = tries
            return self.window_s - (now - tries[0]) if len(tries) >= self.max_attempts else 0.0

    def failed(self, name: str) -> None:
        with self._lock:
            self._tries.setdefault(name, []).append(time.time())


if __name__ == "__main__":
    import getpass

    print(hash_secret(getpass.getpass("curator secret: ")))
