"""The installed list's file, ``<state_dir>/approvals.jws``: its name, its size limit, and
how it is read, always in 1 MiB chunks (``chunks``).

``scan`` reads it for the daemon's confirmation, whose other threads must never wait long for
the GIL; ``decode`` reads a list for an install or a rebuild, decoding the payload on the
way and, for an install, writing the token to the install's temporary file. In one pass they
compute

- the binding hash: SHA-256 of the file's bytes exactly as they are on disk (for an install,
  of the bytes it writes: the token without the whitespace around it, and one newline), by
  which the list's index (``index``) is named;
- the SHA-256 of the JWS Signing Input (RFC 7515 §5.2 step 8): everything before the second
  '.', once the surrounding whitespace is left out;

and keep only the first and last parts (the header and the signature, about 100 bytes each),
plus the payload, decoded four base64url characters at a time, for ``decode``. hashlib
releases the GIL while it hashes a large buffer, so each chunk costs the other threads next
to nothing. The same one-line refusals as ``jws.verify_es256`` apply (size, ASCII, three
parts, strict base64url with a canonical last group).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from firmware.approvals import ApprovalError
from firmware.approvals.durable import write_all
from firmware.approvals.jws import JwsError, UtilityKey, b64url_decode, verify_es256_prehashed

_TO_STANDARD = bytes.maketrans(b"-_", b"+/")

FILE_NAME = "approvals.jws"
MAX_JWS_BYTES = 1024 * 1024 * 1024  # a million entries take ~90 MB; five million ~450 MB
CHUNK_BYTES = 1 << 20
MAX_PART_BYTES = 1 << 16  # the header or the signature part; ES256's are ~100 bytes


class WriteFailed(ApprovalError):
    """Raised when the token cannot be written to the install's temporary file."""


class FileTooLarge(ApprovalError):
    """Raised when a list is larger than ``MAX_JWS_BYTES``."""


@dataclass(frozen=True, slots=True)
class ScannedJws:
    file_sha256: bytes  # the binding hash: the file's bytes as they are on disk
    signing_sha256: bytes  # of the JWS Signing Input (RFC 7515 §5.2 step 8)
    header: bytes  # the first part, base64url
    signature: bytes  # the last part, base64url

    def verify(self, keys: Sequence[UtilityKey]) -> None:
        """ES256 over the digest, by ``jws.verify_es256``'s rules; JwsError otherwise."""
        verify_es256_prehashed(self.header, self.signature, self.signing_sha256, keys)


def check_size(size: int) -> None:
    if size > MAX_JWS_BYTES:
        raise FileTooLarge(f"list is larger than {MAX_JWS_BYTES} bytes")


def scan(path: Path) -> ScannedJws:
    """Read ``path`` in chunks (OSError as reading raises it); JwsError or FileTooLarge with
    the first problem."""
    scanner = _Scanner()
    for chunk in chunks(path):
        scanner.feed(chunk)
    return scanner.result()


def chunks(source: Path | bytes | str) -> Iterator[bytes]:
    """``source`` (a file, or a token in memory) in ``CHUNK_BYTES`` pieces; OSError as
    reading raises it."""
    if isinstance(source, Path):
        with source.open("rb", buffering=0) as handle:
            while chunk := handle.read(CHUNK_BYTES):
                yield chunk
        return
    data = source.encode("utf-8") if isinstance(source, str) else source
    view = memoryview(data)
    for start in range(0, len(data), CHUNK_BYTES):
        yield view[start : start + CHUNK_BYTES].tobytes()


@dataclass(frozen=True, slots=True)
class DecodedJws:
    scanned: ScannedJws  # file_sha256: of the bytes written (the token and a newline)
    payload: bytearray  # decoded, not looked at until the signature verifies
    payload_sha256: bytes


def decode(source: Path | bytes | str, sink: int | None = None) -> DecodedJws:
    """Read ``source`` in chunks as ``scan`` does, decoding the payload on the way and, with
    ``sink`` (a file descriptor), writing the token followed by one newline to it: what an
    install puts in place, never more than a chunk of the file in memory besides the
    payload. ``file_sha256`` is then the hash of the bytes written."""
    scanner = _Scanner(payload=bytearray(), sink=sink)
    for chunk in chunks(source):
        scanner.feed(chunk)
    scanned = scanner.result()
    assert scanner.payload is not None
    return DecodedJws(scanned, scanner.payload, scanner.payload_hash.digest())


@dataclass(slots=True)
class _Scanner:
    """The state of one pass: ``dots`` counts the separators seen, which tells which part
    each byte belongs to. With ``payload``, the second part is decoded into it (base64url,
    four characters at a time: ``carry`` holds the rest); with ``sink``, the token is
    written to it without the whitespace around it (``held``: whitespace that may be the
    end), and ``file_hash`` hashes what is written."""

    file_hash: hashlib._Hash = field(default_factory=hashlib.sha256)
    signing_hash: hashlib._Hash = field(default_factory=hashlib.sha256)
    size: int = 0
    dots: int = 0
    started: bool = False  # the leading whitespace is behind
    is_ascii: bool = True
    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    payload: bytearray | None = None
    payload_hash: hashlib._Hash = field(default_factory=hashlib.sha256)
    carry: bytes = b""
    sink: int | None = None
    held: bytes = b""
    tail_ended: bool = False  # whitespace after the signature was seen

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        check_size(self.size)
        self.is_ascii = self.is_ascii and chunk.isascii()
        start = 0
        if not self.started:
            start = len(chunk) - len(chunk.lstrip())
            self.started = start < len(chunk)
        if self.sink is None:
            self.file_hash.update(chunk)
        else:
            self._write(chunk[start:] if start else chunk)
        view = memoryview(chunk)
        while start < len(chunk) and self.dots < 2:
            dot = chunk.find(b".", start)
            end = len(chunk) if dot < 0 else dot
            self.signing_hash.update(view[start:end])
            if self.dots == 0:
                _keep(self.head, view[start:end])
            elif self.payload is not None:
                self._decode(view[start:end])
            if dot < 0:
                return
            self.dots += 1
            if self.dots == 1:
                self.signing_hash.update(b".")  # header "." payload; the second '.' is not
            start = dot + 1
        if start < len(chunk):  # the signature, and whatever follows it
            self.dots += chunk.count(b".", start)
            self._tail(view[start:])

    def _tail(self, data: memoryview) -> None:
        # the signature ends at the first whitespace: anything but whitespace after it is
        # not part of the token (verify_es256 refuses it inside the signature part), however
        # far it lies beyond the bytes kept
        if self.tail_ended:
            if data.tobytes().strip():
                raise JwsError("JWS signature is not base64url")
            return
        text = data.tobytes()
        end = len(text.rstrip())
        stripped = text[:end]
        if any(c in stripped for c in b" \t\r\n\x0b\x0c"):
            raise JwsError("JWS signature is not base64url")
        _keep(self.tail, data[:end])
        self.tail_ended = end < len(text)

    def _write(self, data: bytes) -> None:
        stripped = data.rstrip()
        if not stripped:
            self.held += data
            return
        out = self.held + stripped if self.held else stripped
        self.held = data[len(stripped) :]
        self.file_hash.update(out)
        self._put(out)

    def _put(self, data: bytes) -> None:
        assert self.sink is not None
        try:
            write_all(self.sink, data)
        except OSError as err:
            raise WriteFailed(err.strerror or str(err)) from err

    def _decode(self, part: memoryview) -> None:
        data = self.carry + part.tobytes() if self.carry else part.tobytes()
        if b"+" in data or b"/" in data or b"=" in data:
            raise JwsError("JWS payload is not base64url")
        whole = len(data) - len(data) % 4
        self.carry = data[whole:]
        try:
            decoded = base64.b64decode(data[:whole].translate(_TO_STANDARD), validate=True)
        except binascii.Error as err:
            raise JwsError("JWS payload is not base64url") from err
        self._append(decoded)

    def _append(self, decoded: bytes) -> None:
        assert self.payload is not None
        self.payload_hash.update(decoded)
        self.payload += decoded  # smaller than the token, whose size is checked

    def result(self) -> ScannedJws:
        if not self.is_ascii:
            raise JwsError("JWS is not ASCII text")
        if self.dots != 2:
            raise JwsError(f"compact JWS has {self.dots + 1} part(s), expected 3")
        signature = bytes(self.tail).rstrip()
        for part, what in ((self.head, "header"), (signature, "signature")):
            if len(part) > MAX_PART_BYTES:
                raise JwsError(f"JWS {what} is longer than {MAX_PART_BYTES} bytes")
        if self.payload is not None and self.carry:
            self._append(b64url_decode(self.carry, "JWS payload"))  # the canonical last group
        if self.sink is not None:
            self.file_hash.update(b"\n")
            self._put(b"\n")
        return ScannedJws(
            self.file_hash.digest(), self.signing_hash.digest(), bytes(self.head), signature
        )


def _keep(part: bytearray, data: memoryview) -> None:
    # one byte over the limit is enough to refuse the part; the rest is only hashed
    room = MAX_PART_BYTES + 1 - len(part)
    if room > 0:
        part += data[:room]
