"""API keys: ``--api-key`` and/or ``--api-key-file`` (one key a line, reread on SIGHUP).

A team per key: add or revoke one by editing the file and sending the server SIGHUP (``systemctl
reload``); requests in flight keep the answer they got. Every key is compared in constant time
(``hmac.compare_digest``) and every key is always compared, so the time taken says nothing of
which key, or which prefix, matched.
"""

from __future__ import annotations

import hmac
import logging
import threading
from pathlib import Path
from typing import FrozenSet, Optional

logger = logging.getLogger("crossrank.serve")


def read_key_file(path: str) -> FrozenSet[str]:
    """The keys of a key file: one a line; blank lines and ``#`` comments are skipped.

    >>> read_key_file("/etc/crossrank/keys")                             # doctest: +SKIP
    frozenset({'team-a-4f9c...', 'team-b-77e1...'})
    """
    keys = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        key = line.strip()
        if key and not key.startswith("#"):
            keys.add(key)
    return frozenset(keys)


class ApiKeys:
    """The keys a request may present as ``Authorization: Bearer KEY``; none = open service.

    >>> keys = ApiKeys("s3cret")
    >>> keys.allows("Bearer s3cret"), keys.allows("Bearer nope"), keys.required
    (True, False, True)
    """

    def __init__(self, key: Optional[str] = None, key_file: Optional[str] = None) -> None:
        self._key, self.key_file = key, key_file
        self._lock = threading.Lock()
        self._keys: FrozenSet[str] = frozenset()
        self.reload()

    def reload(self) -> int:
        """Read the key file again (SIGHUP); a file that cannot be read keeps the old keys.

        Returns how many keys are now accepted.
        """
        keys = {self._key} if self._key else set()
        if self.key_file is not None:
            try:
                keys |= read_key_file(self.key_file)
            except (OSError, UnicodeDecodeError) as error:
                if self._keys:  # a running server keeps serving with what it had
                    logger.error("API key file not reread, keeping %d keys: %s",
                                 len(self._keys), error)  # fmt: skip
                    return len(self._keys)
                raise ValueError(f"api_key_file: cannot read {self.key_file}: {error}") from None
            if not keys:
                raise ValueError(f"api_key_file: {self.key_file} holds no key")
        with self._lock:
            self._keys = frozenset(keys)
        logger.info("API keys loaded: %d", len(keys))
        return len(keys)

    @property
    def required(self) -> bool:
        """Whether requests must present a key."""
        return bool(self._keys) or self.key_file is not None

    def allows(self, header: Optional[str]) -> bool:
        """Whether an ``Authorization`` header carries one of the keys."""
        scheme, _, token = (header or "").partition(" ")
        given = token.strip().encode("utf-8", "surrogatepass")
        matched = False
        for key in self._keys:  # all of them, whatever matched: constant time in the key
            matched |= hmac.compare_digest(given, key.encode("utf-8"))
        return scheme.lower() == "bearer" and matched
