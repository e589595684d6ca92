"""One conditional HTTPS GET of the approval list, streamed to a file in the state directory.

Owns what the daemon's refresher asks of the utility's server: the request (``If-None-Match``
and ``If-Modified-Since`` from the validators of the last list it accepted, RFC 9110 §13.1.2
and §13.1.3), what counts as an answer (200 with a body, or 304 Not Modified to a conditional
request), and the limits: TLS verified against the configured CA, redirects not followed (so
nothing leads the fetch off HTTPS), the whole exchange within the fetch timeout, and the body
at most ``MAX_JWS_BYTES`` (the store's own limit), written in 64 KiB chunks so that neither
the daemon's memory nor its event loop carries a large list. It does not verify what it
downloaded: the refresher has the store's install do that, out of the daemon's process.

aiohttp is imported inside ``fetch``: a daemon without ``[approvals] url`` never loads its
client.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from firmware.approvals import ApprovalError
from firmware.approvals.durable import discard, write_all
from firmware.approvals.installed_file import MAX_JWS_BYTES

if TYPE_CHECKING:
    import ssl

CHUNK_BYTES = 1 << 16
MAX_VALIDATOR_CHARS = 256  # an ETag or an HTTP date; anything longer is not sent back


class FetchFailed(ApprovalError):
    """Raised when the server cannot be reached or does not answer with a list: connection,
    TLS or timeout failure, or an HTTP status other than 200 and 304 (worth retrying soon)."""


class AnswerRefused(ApprovalError):
    """Raised when the server's answer is unusable as it stands: a body over the size limit,
    or 304 to a request that named no validator (worth no quick retry)."""


@dataclass(frozen=True, slots=True)
class Validators:
    """What the server said identifies the body it sent (RFC 9110 §8.8)."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        """The conditional request's headers: none without validators."""
        headers = {}
        if self.etag is not None:
            headers["If-None-Match"] = self.etag
        if self.last_modified is not None:
            headers["If-Modified-Since"] = self.last_modified
        return headers


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A 200: the body is in ``path`` (``size`` bytes), ``validators`` identify it."""

    path: Path
    size: int
    validators: Validators


NOT_MODIFIED = None  # what ``fetch`` returns for 304: the list in force is the server's


async def fetch(
    url: str, context: ssl.SSLContext, timeout_s: float, sent: Validators, into: Path
) -> Downloaded | None:
    """GET ``url`` conditionally on ``sent``; the body in ``into`` (0600, replaced), or
    ``NOT_MODIFIED``. FetchFailed or AnswerRefused with a one-line reason; ``into`` is
    removed then."""
    import ssl

    import aiohttp

    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, ssl=context, allow_redirects=False, headers=sent.headers()) as reply,
        ):
            if reply.status == 304:
                if not sent.headers():
                    raise AnswerRefused("HTTP 304 Not Modified to a request with no validator")
                return NOT_MODIFIED
            if reply.status != 200:
                raise FetchFailed(f"HTTP {reply.status} {reply.reason or ''}".rstrip())
            if (reply.content_length or 0) > MAX_JWS_BYTES:
                raise AnswerRefused(f"list is larger than {MAX_JWS_BYTES} bytes")
            got = Validators(_validator(reply.headers.get("ETag")),
                             _validator(reply.headers.get("Last-Modified")))  # fmt: skip
            size = await _save(reply.content.iter_chunked(CHUNK_BYTES), into)
            return Downloaded(into, size, got)
    except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as err:
        discard(into)
        reason = " ".join(str(err).split()) or type(err).__name__
        raise FetchFailed(f"cannot fetch: {reason}") from err
    except ApprovalError:
        discard(into)
        raise


async def _save(chunks: AsyncIterator[bytes], into: Path) -> int:
    """Write the body to ``into`` as it arrives; AnswerRefused past the limit."""
    size = 0
    fd = os.open(into, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > MAX_JWS_BYTES:
                raise AnswerRefused(f"list is larger than {MAX_JWS_BYTES} bytes")
            write_all(fd, chunk)  # 64 KiB to the page cache: no wait worth a thread
    finally:
        os.close(fd)
    return size


def _validator(value: str | None) -> str | None:
    """A validator worth sending back: printable ASCII of reasonable length, else none."""
    if value is None or not 0 < len(value) <= MAX_VALIDATOR_CHARS:
        return None
    return value if value.isascii() and value.isprintable() else None
