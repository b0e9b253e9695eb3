"""Memory handed back after a burst (docs/operations.md, "Memory").

After 64 clients sent 4 MiB requests at once, glibc's malloc kept the pages they freed: RSS
stayed ~180 MiB above its start. modeld caps glibc's arenas and hands the freed pages back
once it has been idle for --idle-trim-ms (src/app/idle_trimmer.h), so RSS falls back near
where it started. bench/memory_burst.py measures the same with the trim and without it.
"""

import threading
import time

import numpy as np
import pytest

from infer_helpers import decode_response, make_request, make_stub
from lifecycle_helpers import vm_rss_kib, wait_until

MIB = 1024 * 1024


def burst(channel, errors, threads=64, requests=10, floats=MIB):
    """`threads` clients each sending `requests` identity_fp32 requests (`floats` FP32, 4 MiB
    by default) back to back; what goes wrong is added to `errors`."""
    stub = make_stub(channel)
    x = np.random.default_rng(1).random((1, floats), np.float32)

    def client():
        try:
            for _ in range(requests):
                reply = stub.ModelInfer(make_request("identity_fp32", [("INPUT0", x)]), timeout=60)
                assert np.array_equal(decode_response(reply)["OUTPUT0"], x)
        except Exception as error:  # noqa: BLE001: reported below
            errors.append(error)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)


@pytest.mark.measures_memory
def test_rss_falls_back_after_a_burst(launch, example_repository):
    server = launch(example_repository)
    pid = server.proc.pid
    errors = []
    burst(server.channel(), errors, threads=2, requests=5)  # warm: channel, threads, allocations
    time.sleep(3)  # measured, not synchronised: the warm-up's own memory handed back first
    started = vm_rss_kib(pid)
    sender = threading.Thread(target=burst, args=(server.channel(), errors))
    sender.start()
    peak = started
    while sender.is_alive():  # the highest RSS while the burst runs
        peak = max(peak, vm_rss_kib(pid))
        sender.join(timeout=0.02)
    assert not errors, errors[:3]
    # Back within 64 MiB of the start, a few seconds after the burst (without the trim it stayed
    # ~180 MiB above, bench/results/2026-12-07-memory-burst.md).
    wait_until(lambda: vm_rss_kib(pid) < started + 64 * 1024, 30,
               what=f"RSS back near {started // 1024} MiB (peak {peak // 1024} MiB)")
