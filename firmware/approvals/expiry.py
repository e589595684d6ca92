"""When the list in force is about to expire: the warning rule, pure.

A list warns once the time left before its ``expires_at`` is below the lesser of 24 hours and
a tenth of its validity (``expires_at - issued_at``): a 30-day list warns for its last day, a
one-day list for its last 2.4 hours, so a short-lived list is not always warning. Once it has
expired the store no longer holds it in force (default deny), and ``status`` says so instead.
It owns nothing else: the watch logs the warning once per list and ``status`` shows it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

WARN_AT_MOST = timedelta(hours=24)
WARN_SHARE = 0.10  # of the list's validity


def warning_from(issued_at: datetime, expires_at: datetime) -> datetime:
    """The moment from which a list valid from ``issued_at`` to ``expires_at`` warns."""
    return expires_at - min(WARN_AT_MOST, (expires_at - issued_at) * WARN_SHARE)


def expiry_warning(issued_at: datetime, expires_at: datetime, now: datetime) -> str | None:
    """The one-line warning at ``now``; None before ``warning_from`` and once expired."""
    if not warning_from(issued_at, expires_at) <= now < expires_at:
        return None
    return f"expires in {_duration(expires_at - now)}: a newer list is needed"


def _duration(left: timedelta) -> str:
    minutes = int(left.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"
