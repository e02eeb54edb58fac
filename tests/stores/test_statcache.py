from __future__ import annotations

import threading
import time
from pathlib import Path

from shipyard.stores.statcache import StatCache


def test_the_cache_is_shared_by_threads_and_closed_from_another(tmp_path: Path) -> None:
    old = time.time_ns() - 10**10  # older than the racily-clean window
    holder: list[StatCache] = []
    opener = threading.Thread(target=lambda: holder.append(StatCache(tmp_path / "stat.db")))
    opener.start()
    opener.join()
    cache = holder[0]
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(50):
                path = f"/data/t{k}/f{i}"
                cache.update([(path, i, old, k, f"blake3:{k}-{i}")])
                assert cache.lookup([path]) == {path: (i, old, k, f"blake3:{k}-{i}")}
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert len(cache.lookup([f"/data/t{k}/f{i}" for k in range(4) for i in range(50)])) == 200
    cache.close()  # from the main thread, not the one that opened it
