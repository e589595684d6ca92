"""Network keys: a fresh NMK per session, NMK from a passphrase, and NID from an NMK.

docs/homeplug-slac.md "Keys" (HomePlug AV key derivation as open-plc-utils does it).
"""

from __future__ import annotations

import hashlib
import secrets

NMK_BYTES = 16
NID_BYTES = 7
PASSPHRASE_SALT = bytes.fromhex("08856DAF7CF58186")
PASSPHRASE_ROUNDS = 1000
NID_ROUNDS = 5


def new_nmk() -> bytes:
    """16 bytes from the operating system's CSPRNG."""
    return secrets.token_bytes(NMK_BYTES)


def nmk_from_passphrase(passphrase: str) -> bytes:
    """SHA-256 over passphrase and salt, 999 more rounds; the first 16 bytes (tests, tools)."""
    digest = hashlib.sha256(passphrase.encode("ascii") + PASSPHRASE_SALT).digest()
    for _ in range(PASSPHRASE_ROUNDS - 1):
        digest = hashlib.sha256(digest).digest()
    return digest[:NMK_BYTES]


def nid_from_nmk(nmk: bytes, security_level: int = 0) -> bytes:
    """SHA-256 over the NMK, 4 more rounds; 6 bytes, then the level and the top 4 bits."""
    if len(nmk) != NMK_BYTES:
        raise ValueError(f"an NMK has {NMK_BYTES} bytes, not {len(nmk)}")
    if not 0 <= security_level <= 3:
        raise ValueError(f"security level {security_level} outside 0..3")
    digest = hashlib.sha256(nmk).digest()
    for _ in range(NID_ROUNDS - 1):
        digest = hashlib.sha256(digest).digest()
    return digest[:6] + bytes([(security_level << 4) | (digest[6] >> 4)])
