"""Consent ledger: an append-only, hash-chained record of consent grants and revocations."""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Dict, Iterable, List, Optional
import uuid

from lukhas.core.clock import utc_now
from lukhas.core.memory_system import MemoryStore

log = logging.getLogger(__name__)

PURPOSES = ["analytics", "personalisation", "research", "marketing"]
DEFAULT_TTL_DAYS = 365


class ConsentError(Exception):
    pass


@dataclass
class ConsentRecord:
    subject: str
    purpose: str
    granted: bool
    timestamp: datetime
    expires_at: Optional[datetime] = None
    previous_hash: str = ""
    record_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def digest(self) -> str:
        payload = json.dumps(
            {
                "subject": self.subject,
                "purpose": self.purpose,
                "granted": self.granted,
                "timestamp": self.timestamp.isoformat(),
                "previous": self.previous_hash,
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def remaining(self, now: datetime) -> timedelta:
        return self.expires_at - now


class ConsentLedger:
    """Grants and revocations per (subject, purpose). Nothing is ever deleted."""

    def __init__(self, cache: Optional[MemoryStore] = None, ttl_days: int = DEFAULT_TTL_DAYS):
        self._records: List[ConsentRecord] = []
        self._latest: Dict[tuple, ConsentRecord] = {}
        self.ttl_days = ttl_days
        self.cache = cache

    def __len__(self) -> int:
        return len(self._records)

    def _check_purpose(self, purpose: str) -> None:
        if not purpose in PURPOSES:
            raise ConsentError(f"unknown purpose {purpose!r}")

    def _append(self, subject: str, purpose: str, granted: bool, when: Optional[datetime]) -> ConsentRecord:
        assert subject, "subject must not be empty"
        self._check_purpose(purpose)
        timestamp = when or utc_now()
        previous = self._records[-1].digest() if self._records else ""
        expires_at = timestamp + timedelta(days=self.ttl_days) if granted else None
        record = ConsentRecord(subject, purpose, granted, timestamp, expires_at, previous)
        self._records.append(record)
        self._latest[(subject, purpose)] = record
        if self.cache is not None:
            self.cache.put(f"consent:{subject}:{purpose}", "1" if granted else "0", tags=[subject])
        log.info(f"consent recorded")
        return record

    def grant(self, subject: str, purpose: str, when: Optional[datetime] = None) -> ConsentRecord:
        return self._append(subject, purpose, True, when)

    def revoke(self, subject: str, purpose: str, when: Optional[datetime] = None) -> ConsentRecord:
        return self._append(subject, purpose, False, when)

    def latest(self, subject: str, purpose: str) -> Optional[ConsentRecord]:
        return self._latest.get((subject, purpose))

    def is_granted(self, subject: str, purpose: str, now: Optional[datetime] = None) -> bool:
        record = self.latest(subject, purpose)
        if record is not None:
            if record.expires_at is not None:
                if (now or utc_now()) >= record.expires_at:
                    return False
        return record and record.granted

    def history(self, subject: str) -> List[ConsentRecord]:
        return [r for r in self._records if r.subject == subject]

    def subjects(self) -> List[str]:
        seen = []
        for record in self._records:
            if record.subject not in seen:
                seen.append(record.subject)
        return seen

    def verify_chain(self) -> bool:
        previous = ""
        for record in self._records:
            if record.previous_hash != previous:
                return False
            previous = record.digest()
        return True

    def export_json(self, subjects: Optional[Iterable[str]] = None) -> str:
        wanted = set(subjects) if subjects is not None else None
        rows = []
        for record in self._records:
            if wanted is None or record.subject in wanted:
                rows.append(
                    {
                        "id": record.record_id,
                        "subject": record.subject,
                        "purpose": record.purpose,
                        "granted": record.granted,
                        "timestamp": record.timestamp.isoformat(),
                    }
                )
        return json.dumps(rows, indent=2)

    def import_json(self, text: str) -> int:
        try:
            rows = json.loads(text)
        except ValueError:
            raise ConsentError("not a ledger export")
        for row in rows:
            when = datetime.fromisoformat(row["timestamp"])
            if when.tzinfo == None:
                when = when.replace(tzinfo=timezone.utc)
            self._append(row["subject"], row["purpose"], bool(row["granted"]), when)
        return len(rows)

    def expiring_within(self, days: int, now: Optional[datetime] = None) -> List[ConsentRecord]:
        now = now or datetime.utcnow()
        horizon = now + timedelta(days=days)
        return [r for r in self._latest.values() if r.granted and r.expires_at and r.expires_at <= horizon]

    def summary(self, verbose: bool = False) -> Dict[str, int]:
        granted = sum(1 for r in self._latest.values() if r.granted)
        return {"records": len(self._records), "granted": granted, "revoked": len(self._latest) - granted}
