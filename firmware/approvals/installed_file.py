"""The installed list's file, ``<state_dir>/approvals.jws``: its name, its size limit, and the
two ways it is read.

``read_whole`` reads it for the full verification (``jws.verify_es256`` and the payload's
parse), done where holding the GIL for a while harms nothing: an install in the CLI's process,
an index rebuild in a child process. ``scan`` reads it in 1 MiB chunks for the daemon, whose
other threads must never wait long for the GIL. In one pass it computes

- the binding hash: SHA-256 of the file's bytes exactly as they are on disk. ``store.install``
  writes the token followed by one newline and hashes exactly those bytes, so the hash names
  the file's content, and the list's index (``index``) is found by it;
- the SHA-256 of the JWS Signing Input (RFC 7515 §5.2 step 8): everything before the second
  '.', once the surrounding whitespace ``jws.ascii_token`` ignores is left out;

and keeps only the first and last parts (the header and the signature, about 100 bytes each).
hashlib releases the GIL while it hashes a large buffer, so each chunk costs the other threads
next to nothing. The same one-line refusals as ``verify_es256`` apply (size, ASCII, three
parts); the payload's base64url is checked by the full verification that built the index.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from firmware.approvals import ApprovalError
from firmware.approvals.jws import JwsError

FILE_NAME = "approvals.jws"
MAX_JWS_BYTES = 256 * 1024 * 1024  # a million entries take ~70 MB
CHUNK_BYTES = 1 << 20
MAX_PART_BYTES = 1 << 16  # the header or the signature part; ES256's are ~100 bytes


class FileTooLarge(ApprovalError):
    """Raised when a list is larger than ``MAX_JWS_BYTES``."""


@dataclass(frozen=True, slots=True)
class ScannedJws:
    file_sha256: bytes  # the binding hash: the file's bytes as they are on disk
    signing_sha256: bytes  # of the JWS Signing Input (RFC 7515 §5.2 step 8)
    header: bytes  # the first part, base64url
    signature: bytes  # the last part, base64url


def check_size(size: int) -> None:
    if size > MAX_JWS_BYTES:
        raise FileTooLarge(f"list is larger than {MAX_JWS_BYTES} bytes")


def read_whole(path: Path) -> bytes:
    """The file's bytes, at most one more than the limit (OSError as reading raises it)."""
    with path.open("rb") as handle:
        return handle.read(MAX_JWS_BYTES + 1)


def scan(path: Path) -> ScannedJws:
    """Read ``path`` in chunks (OSError as reading raises it); JwsError or FileTooLarge with
    the first problem."""
    scanner = _Scanner()
    with path.open("rb", buffering=0) as handle:
        while chunk := handle.read(CHUNK_BYTES):
            scanner.feed(chunk)
    return scanner.result()


@dataclass(slots=True)
class _Scanner:
    """The state of one pass: ``dots`` counts the separators seen, which tells which part
    each byte belongs to."""

    file_hash: hashlib._Hash = field(default_factory=hashlib.sha256)
    signing_hash: hashlib._Hash = field(default_factory=hashlib.sha256)
    size: int = 0
    dots: int = 0
    started: bool = False  # the leading whitespace is behind
    is_ascii: bool = True
    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        check_size(self.size)
        self.file_hash.update(chunk)
        self.is_ascii = self.is_ascii and chunk.isascii()
        start = 0
        if not self.started:
            start = len(chunk) - len(chunk.lstrip())
            self.started = start < len(chunk)
        view = memoryview(chunk)
        while start < len(chunk) and self.dots < 2:
            dot = chunk.find(b".", start)
            end = len(chunk) if dot < 0 else dot
            self.signing_hash.update(view[start:end])
            if self.dots == 0:
                _keep(self.head, view[start:end])
            if dot < 0:
                return
            self.dots += 1
            if self.dots == 1:
                self.signing_hash.update(b".")  # header "." payload; the second '.' is not
            start = dot + 1
        if start < len(chunk):  # the signature, and whatever follows it
            self.dots += chunk.count(b".", start)
            _keep(self.tail, view[start:])

    def result(self) -> ScannedJws:
        if not self.is_ascii:
            raise JwsError("JWS is not ASCII text")
        if self.dots != 2:
            raise JwsError(f"compact JWS has {self.dots + 1} part(s), expected 3")
        signature = bytes(self.tail).rstrip()
        for part, what in ((self.head, "header"), (signature, "signature")):
            if len(part) > MAX_PART_BYTES:
                raise JwsError(f"JWS {what} is longer than {MAX_PART_BYTES} bytes")
        return ScannedJws(
            self.file_hash.digest(), self.signing_hash.digest(), bytes(self.head), signature
        )


def _keep(part: bytearray, data: memoryview) -> None:
    # one byte over the limit is enough to refuse the part; the rest is only hashed
    room = MAX_PART_BYTES + 1 - len(part)
    if room > 0:
        part += data[:room]
