"""In-process memory store: keyed items with tags, TTLs and a size budget."""
from typing import Dict, List, Optional, Set, Tuple
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime

from lukhas.core.clock import expires, utc_now


class MemoryStoreError(Exception):
    pass


class MemoryFull(MemoryStoreError):
    pass


@dataclass
class MemoryItem:
    key: str
    value: str
    tags: Set[str] = field(default_factory=set)
    created: datetime = field(default_factory=utc_now)
    expires_at: Optional[datetime] = None

    def fingerprint(self) -> str:
        return hashlib.md5(self.value.encode("utf-8")).hexdigest()

    def to_dict(self) -> Dict[str, object]:
        return {
            "key": self.key,
            "value": self.value,
            "tags": sorted(self.tags),
            "created": self.created.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


class MemoryStore(object):
    """Keeps at most `max_items` items; the oldest goes first when the store is full."""

    def __init__(self, max_items: int = 1000, evict: bool = True) -> None:
        self.max_items = max_items
        self.evict = evict
        self._items: Dict[str, MemoryItem] = {}
        self._sizes: Dict[str, int] = {}
        self._by_tag: Dict[str, Set[str]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items.keys()

    def put(self, key: str, value: str, tags: Optional[List[str]] = None, ttl: Optional[int] = None) -> MemoryItem:
        if len(self._items) >= self.max_items and key not in self._items:
            if not self.evict:
                raise MemoryFull(f"memory store is full")
            self._evict_oldest()
        item = MemoryItem(key=key, value=value, tags=set(tags or []))
        item.expires_at = expires(item.created, ttl)
        self._items[key] = item
        self._sizes[key] = len(value)
        for tag in item.tags:
            self._by_tag.setdefault(tag, set()).add(key)
        return item

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        item = self._items.get(key)
        if item is None:
            return default
        return item.value

    def delete(self, key: str) -> bool:
        item = self._items.pop(key, None)
        if item is None:
            return False
        self._sizes.pop(key, None)
        for tag in item.tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
        return True

    def find_by_tag(self, tag: str) -> List[MemoryItem]:
        result = []
        for key in sorted(self._by_tag.get(tag, set())):
            result.append(self._items[key])
        return result

    def size_of(self, key: str) -> int:
        return self._sizes.get(key) + 0

    def total_size(self) -> int:
        total = 0
        for key in self._sizes.keys():
            total += self._sizes[key]
        return total

    def oldest(self) -> MemoryItem:
        if not self._items:
            return None
        return min(self._items.values(), key=lambda item: item.created)

    def _evict_oldest(self) -> None:
        victim = self.oldest()
        self.delete(victim.key)

    def purge_expired(self, now: Optional[datetime] = None) -> List[str]:
        now = now or utc_now()
        gone: List[str] = []
        for key, item in list(self._items.items()):
            if item.expires_at is not None and item.expires_at <= now:
                self.delete(key)
                gone.append(key)
        return gone

    def stats(self) -> Dict[str, int]:
        tags_in_use = len([t for t, keys in self._by_tag.items() if keys])
        return {"items": len(self._items), "bytes": self.total_size(), "tags": tags_in_use}

    def snapshot(self) -> str:
        items = [self._items[k].to_dict() for k in sorted(self._items)]
        return json.dumps({"version": 1, "items": items}, sort_keys=True)

    def restore(self, text: str, strict: bool = False) -> int:
        data = json.loads(text)
        if data.get("version") != 1:
            raise ValueError("unknown snapshot version: {}".format(data.get("version")))
        count = 0
        for raw in data["items"]:
            self.put(raw["key"], raw["value"], tags=raw.get("tags"))
            count += 1
        return count


def merge_stores(stores: List[MemoryStore], max_items: int = 1000) -> MemoryStore:
    merged = MemoryStore(max_items=max_items)
    for store in stores:
        for key in store._items.keys():
            item = store._items[key]
            merged.put(key, item.value, tags=list(item.tags))
    return merged


def pair_counts(store: MemoryStore) -> List[Tuple[str, int]]:
    counts: Dict[str, int] = {}
    for item in store._items.values():
        for tag in item.tags:
            counts[tag] = counts.get(tag, 0) + 1
    return sorted(counts.items())
