"""Run a collector from Python: in a background thread (tests, the demo) until told to stop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from stock_pipelines.collector.runner import Collector


class CollectorThread:
    """`with CollectorThread(collector):` runs it on its own event loop; leaving stops it gracefully."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"collector-{collector.id}", daemon=True)
        self._started = threading.Event()

    def _main(self) -> None:
        async def main() -> None:
            stop = asyncio.Event()
            self._stop, self._loop = stop, asyncio.get_running_loop()
            self._started.set()
            await self.collector.run(stop)

        try:
            asyncio.run(main())
        except BaseException as error:  # surfaced by stop()
            self.error = error
        finally:
            self._started.set()

    def start(self) -> CollectorThread:
        self._thread.start()
        self._started.wait(10)
        return self

    def wait_for(self, condition: Callable[[], bool], timeout_s: float, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self.error is not None:
                raise RuntimeError(f"collector failed: {self.error!r}") from self.error
            if time.monotonic() > deadline:
                raise TimeoutError(f"collector: {what} not reached within {timeout_s} s")
            time.sleep(0.02)

    def stop(self, timeout_s: float = 20.0) -> None:
        if self._thread.is_alive() and getattr(self, "_loop", None) is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(f"collector {self.collector.id} did not stop within {timeout_s} s")
        if self.error is not None:
            raise RuntimeError(f"collector failed: {self.error!r}") from self.error

    def __enter__(self) -> CollectorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
