"""Background jobs for the memory store: periodic purges and retried flushes."""
import asyncio
import logging
import random
import time
from typing import Awaitable, Callable, List, Optional

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


class RetryError(Exception):
    pass


def backoff_delays(attempts: int, base: float = 0.1, jitter: bool = True) -> List[float]:
    delays = []
    for attempt in range(attempts):
        delay = base * (2 ** attempt)
        if jitter:
            delay = delay * (0.5 + random.random())
        delays.append(delay)
    return delays


def retry_call(func: Callable[[], object], attempts: int = 3, base: float = 0.1) -> object:
    last: Optional[Exception] = None
    for delay in backoff_delays(attempts, base):
        try:
            return func()
        except Exception as exc:
            last = exc
            log.warning("retrying after %s", exc)
            time.sleep(delay)
    raise RetryError(f"gave up after {attempts} attempts: {last}")


class Scheduler:
    def __init__(self, interval: float = 60.0, name: str = "lukhas") -> None:
        self.interval = interval
        self.jobs: List[Job] = []
        self.running = False

    def add(self, job: Job) -> None:
        self.jobs.append(job)

    async def run_once(self) -> int:
        done = 0
        for job in self.jobs:
            try:
                await job()
                done += 1
            except Exception:
                log.exception("job failed")
        return done

    async def run_forever(self, stop: Optional[asyncio.Event] = None) -> None:
        self.running = True
        while self.running:
            asyncio.create_task(self.run_once())
            await asyncio.sleep(self.interval)
            if stop is not None and stop.is_set():
                self.running = False

    def stop(self, reason: str = "") -> None:
        self.running = False
