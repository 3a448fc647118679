"""ListOperations page tokens that tell a tenant nothing: :class:`PageTokens`.

A page ends at an operation's ``seq``, a counter shared by every tenant: given as it is, the
token would tell a tenant how many operations the others created between two of its own. So
the token is sealed: ``nonce ‖ seq ⊕ pad ‖ tag``, where the pad and the tag are HMAC-SHA256 of
the server's secret over the nonce and the tenant (the tag over the sealed ``seq`` too), base64
without padding. A token does not show its ``seq``, cannot be forged or altered, and only opens
for the tenant it was given to. The secret is kept in the key store, so tokens survive a
restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import Final

from rpc.errors import FilterError

__all__ = ["PageTokens"]

_NONCE: Final = 8
_SEQ: Final = 8
_TAG: Final = 12


class PageTokens:
    """Seals and opens page tokens with ``secret`` (at least 16 random bytes)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the page token secret must have at least 16 bytes")
        self._secret = secret

    def _mac(self, label: bytes, *parts: bytes) -> bytes:
        return hmac.new(self._secret, b"\0".join((label, *parts)), hashlib.sha256).digest()

    def seal(self, seq: int, tenant: str) -> str:
        """The token of a page that ends at ``seq``, for ``tenant``."""
        nonce = secrets.token_bytes(_NONCE)
        pad = self._mac(b"pad", nonce, tenant.encode())[:_SEQ]
        body = bytes(a ^ b for a, b in zip(seq.to_bytes(_SEQ, "big"), pad, strict=True))
        tag = self._mac(b"tag", nonce, body, tenant.encode())[:_TAG]
        return base64.urlsafe_b64encode(nonce + body + tag).rstrip(b"=").decode()

    def open(self, token: str, tenant: str) -> int:
        """The ``seq`` of ``token``; :class:`~rpc.errors.FilterError` (INVALID_ARGUMENT naming
        ``page_token``) when it is not a token this server gave ``tenant``."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == _NONCE + _SEQ + _TAG:
            nonce, body, tag = raw[:_NONCE], raw[_NONCE:-_TAG], raw[-_TAG:]
            expected = self._mac(b"tag", nonce, body, tenant.encode())[:_TAG]
            if hmac.compare_digest(tag, expected):
                pad = self._mac(b"pad", nonce, tenant.encode())[:_SEQ]
                return int.from_bytes(bytes(a ^ b for a, b in zip(body, pad, strict=True)), "big")
        raise FilterError(f"invalid page_token {token[:100]!r}", field="page_token")
