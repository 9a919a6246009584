"""An iterator produced one item ahead in a helper thread: the next piece of an archive file is
read and counted while the current one is parsed (disk and numpy release the GIL)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

_DONE = object()


def read_ahead(items: Iterator) -> Iterator:
    """`items`, produced one ahead in a helper thread (its errors re-raised here)."""
    with ThreadPoolExecutor(1, thread_name_prefix="archive-read") as pool:
        ahead = pool.submit(next, items, _DONE)
        while True:
            item = ahead.result()
            if item is _DONE:
                return
            ahead = pool.submit(next, items, _DONE)
            yield item
