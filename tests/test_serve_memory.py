"""The server's memory hygiene: freed heap handed back to the OS after LLM batches."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from promptrec.serve.batching import BatchQueue


# Run in a fresh interpreter: in the test process, other tests' threads and heap state move RSS meanwhile (a run
# after tests/test_serve_security.py once saw less than 80 MB come back).
TRIM_PROBE = """
import gc, json, psutil
from promptrec.serve.memory import HeapTrimmer

def rss_mb():
    return psutil.Process().memory_info().rss / 2**20

trimmer = HeapTrimmer(min_interval_s=60)
# 128 MB of heap chunks, each followed by a small block that stays: freeing the large ones leaves holes
# that glibc keeps (only the heap's top is returned on free), as an LLM's temporaries of many sizes do
large, kept = [], []
for _ in range(2000):
    large.append(bytearray(64 * 1024))
    kept.append(bytearray(600))
del large
gc.collect()
before = rss_mb()
ran = trimmer()
after = rss_mb()
print(json.dumps({"available": trimmer.stats["available"], "ran": ran, "returned_mb": before - after,
                  "again": trimmer(), "trims": trimmer.stats["trims"], "kept": len(kept)}))
"""


def test_the_trimmer_gives_freed_heap_back_and_honours_its_interval():
    out = json.loads(subprocess.run([sys.executable, "-c", TRIM_PROBE], capture_output=True, text=True,
                                    check=True).stdout)
    if not out["available"]:
        pytest.skip("the C library is not glibc: there is no malloc_trim to call")
    assert out["ran"]
    assert out["returned_mb"] > 80, "malloc_trim should have returned most of the 128 MB of holes"
    assert not out["again"] and out["trims"] == 1  # within min_interval_s: not again
    assert out["kept"] == 2000


def test_the_queue_runs_its_after_batch_hook_once_callers_have_their_results():
    submitted, hook_ran = threading.Event(), threading.Event()
    futures, seen = [], []

    def process(requests):
        submitted.wait(5)  # all three are submitted before the batch ends
        return [r * 2 for r in requests]

    def after_batch():
        seen.append([f.done() for f in futures])
        hook_ran.set()

    q = BatchQueue(process, name="LLM", max_batch=3, max_wait_s=2.0, after_batch=after_batch)  # one batch of 3
    futures += [q.submit(i) for i in range(3)]
    submitted.set()
    assert [f.result(5) for f in futures] == [0, 2, 4]
    assert hook_ran.wait(5) and seen[0] == [True, True, True]
    q.close()
