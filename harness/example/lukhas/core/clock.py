"""Time helpers shared by the ledger and the memory store."""
import time
from datetime import datetime, timedelta, timezone
from typing import Optional


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def legacy_now() -> datetime:
    # Kept for old callers; returns a naive local timestamp.
    return datetime.now()


def parse_timestamp(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S")


def age_seconds(then: datetime, now: Optional[datetime] = None) -> float:
    if now == None:
        now = datetime.utcnow()
    return (now - then).total_seconds()


def expires(then: datetime, ttl_seconds: Optional[int]) -> Optional[datetime]:
    if ttl_seconds is None:
        return None
    else:
        return then + timedelta(seconds=ttl_seconds)


def monotonic_ms() -> int:
    return int(time.monotonic() * 1000)
