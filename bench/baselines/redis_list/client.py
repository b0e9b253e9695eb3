#!/usr/bin/env python3
"""Load for the Redis-list baseline: N concurrent Python clients, single-item requests.

Usage (bench/run.py runs it; the venv's redis-py):
    .venv/bin/python bench/baselines/redis_list/client.py --port P --item-bytes 1024 \
        --concurrency 1,4,16,64 --warmup-seconds 1 --seconds 3 --json out.json

Each client is a thread with its own connection, as each web worker would have: LPUSH a
request, BRPOP one answer from the shared results list, repeat. Latency is the popped answer's
own send time to now (the answer may belong to another client: see worker.py); `mixed_up`
counts answers popped by a client that did not send them. The JSON has modeld-bench's shape
(levels with throughput and latency percentiles) so bench/run.py reads both alike.

Limits: the clients are Python threads under one GIL; while they wait on sockets the GIL is
free, but their own CPU counts against the 2-core machine like any client's.
"""

import argparse
import json
import math
import random
import struct
import threading
import time

import redis

HEADER = struct.Struct("<Qq")  # request id (client index << 40 | sequence), send time ns
REQUESTS = "modeld-bench:requests"
RESULTS = "modeld-bench:results"


def percentile(sorted_values, quantile):
    """Nearest rank, as modeld-bench."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values), max(1, math.ceil(quantile * len(sorted_values))))
    return sorted_values[rank - 1]


def run_level(port, concurrency, payload, warmup, seconds):
    start = time.monotonic_ns()
    measure_start = start + int(warmup * 1e9)
    measure_end = measure_start + int(seconds * 1e9)
    latencies, counts = [], {"sent": 0, "mixed_up": 0, "errors": 0}
    lock = threading.Lock()

    def client(index):
        connection = redis.Redis(host="127.0.0.1", port=port)
        mine, sent, mixed = [], 0, 0
        sequence = 0
        while True:
            now = time.monotonic_ns()
            if now >= measure_end:
                break
            sequence += 1
            connection.lpush(REQUESTS,
                            HEADER.pack(index << 40 | sequence, now) + payload)
            sent += measure_start <= now < measure_end
            answer = connection.brpop(RESULTS, timeout=30)
            done = time.monotonic_ns()
            if answer is None:
                with lock:
                    counts["errors"] += 1
                continue
            request_id, sent_ns = HEADER.unpack_from(answer[1])
            if measure_start <= done < measure_end:
                mine.append(done - sent_ns)
                mixed += (request_id >> 40) != index
        with lock:
            latencies.extend(mine)
            counts["sent"] += sent
            counts["mixed_up"] += mixed

    cpu_start = time.process_time()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu = time.process_time() - cpu_start
    # Answers still queued when the level ended would be popped by the next level's clients.
    redis.Redis(host="127.0.0.1", port=port).delete(REQUESTS, RESULTS)
    latencies.sort()
    us = [v / 1e3 for v in latencies]
    throughput = len(us) / seconds
    return {
        "mode": "concurrency", "level": concurrency, "seconds": seconds,
        "sent": counts["sent"], "successes": len(us), "throughput": throughput,
        "items_per_second": throughput,
        "latency": {"count": len(us), "mean_us": sum(us) / len(us) if us else 0,
                    "p50_us": percentile(us, 0.5), "p90_us": percentile(us, 0.9),
                    "p99_us": percentile(us, 0.99), "max_us": us[-1] if us else 0},
        "errors": {"DEADLINE_EXCEEDED": counts["errors"]} if counts["errors"] else {},
        "mixed_up": counts["mixed_up"],
        "client_cpu_cores": cpu / (warmup + seconds),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--item-bytes", type=int, required=True, help="one item's input bytes")
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--warmup-seconds", type=float, default=1)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()

    values = args.item_bytes // 4
    payload = struct.pack(f"<{values}f", *(random.uniform(-1, 1) for _ in range(values)))
    levels = []
    for concurrency in [int(c) for c in args.concurrency.split(",")]:
        levels.append(run_level(args.port, concurrency, payload, args.warmup_seconds,
                                args.seconds))
        level = levels[-1]
        print(f"redis-list c={concurrency}: {level['throughput']:.0f} req/s, "
              f"p50 {level['latency']['p50_us']:.0f} us, p99 {level['latency']['p99_us']:.0f} us,"
              f" mixed up {level['mixed_up']}", flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"target": f"redis 127.0.0.1:{args.port}", "levels": levels}, out, indent=1)


if __name__ == "__main__":
    main()
