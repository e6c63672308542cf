"""Curator accounts: secrets stored hashed (PBKDF2-SHA256) or plain, compared as bytes in constant
time, with a limit on wrong attempts per client and for the server (never per name).

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

__all__ = ["hash_secret", "secret_matches", "SignInLimiter"]

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


class SignInLimiter:
    """Wrong secrets are limited per *client* and for the whole server, never per account name, so
    that nobody can lock a curator out by typing her name with wrong secrets (issue 23, item 6).

    * Per client (its IP address, :func:`ui.identity.client_id`): the first ``free`` wrong tries in
      ``window_s`` cost nothing; after them each try waits ``base_s * 2**(k - free)`` seconds after the
      previous wrong one (capped at ``cap_s``), whatever names it types. 40 names from one client are
      therefore as limited as 40 tries of one name.
    * For the whole server: past ``global_free`` wrong tries in ``window_s`` (many clients guessing
      together), a client that has itself failed in the window waits the same exponential backoff
      after the server's last wrong try (capped at ``global_cap_s``). A client with no wrong try of
      its own is always checked, so a stranger's flood never locks the real curator out.

    Exponential backoff after repeated authentication failures is NIST SP 800-63B section 5.2.2
    ("Rate Limiting (Throttling)"); keying on the client rather than the account follows OWASP's
    Authentication Cheat Sheet (account lockout lets an attacker lock legitimate users out).
    ``clock`` is injectable for tests."""

    def __init__(self, *, free: int = 5, base_s: float = 2.0, cap_s: float = 900.0, window_s: float = 900.0,
                 global_free: int = 30, global_cap_s: float = 60.0, clock=time.monotonic) -> None:
        self.free, self.base_s, self.cap_s, self.window_s = free, base_s, cap_s, window_s
        self.global_free, self.global_cap_s, self.clock = global_free, global_cap_s, clock
        self._tries: dict[str, list[float]] = {}
        self._global: list[float] = []
        self._lock = threading.Lock()

    def _prune(self, now: float) -> None:
        self._global = [t for t in self._global if now - t < self.window_s]
        for k in list(self._tries):
            self._tries[k] = [t for t in self._tries[k] if now - t < self.window_s]
            if not self._tries[k]:
                del self._tries[k]

    def _backoff(self, excess: int, cap: float) -> float:
        return min(cap, self.base_s * 2.0 ** min(excess, 40))

    def wait_for(self, client: str) -> float:
        """Seconds until ``client`` may try a secret (0 if it may now)."""
        now = self.clock()
        with self._lock:
            self._prune(now)
            mine = self._tries.get(client, [])
            wait = 0.0
            if len(mine) >= self.free:
                wait = max(wait, mine[-1] + self._backoff(len(mine) - self.free, self.cap_s) - now)
            if mine and len(self._global) >= self.global_free:
                wait = max(wait, self._global[-1] + self._backoff(len(self._global) - self.global_free, self.global_cap_s) - now)
            return max(0.0, wait)

    def failed(self, client: str) -> None:
        now = self.clock()
        with self._lock:
            self._tries.setdefault(client, []).append(now)
            self._global.append(now)

    def succeeded(self, client: str) -> None:
        """A right secret clears the client's own count (not the server's)."""
        with self._lock:
            self._tries.pop(client, None)


if __name__ == "__main__":
    import getpass

    print(hash_secret(getpass.getpass("curator secret: ")))
