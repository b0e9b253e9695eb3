#!/usr/bin/env python3
"""One process of Python web-tier clients for bench/redis_bench.py.

Usage (redis_bench.py starts several at once, with the venv's Python):
    .venv/bin/python bench/harness/redis_python_clients.py --url redis://127.0.0.1:P/0 \
        --model mlp --input-size 256 --threads 16 --start-ns N --warmup-seconds 1 --seconds 3

THREADS threads share one modeld.Client (as a web process shares it), each calling predict()
with ONE request outstanding, from the common CLOCK_MONOTONIC time --start-ns on: the
processes of a level start together and measure the same window. Prints one JSON line: the
latencies (ns) of the calls that ended inside the window, the calls started in it, errors by
code (MISROUTED: a reply that answered another request, which the client refuses), and this
process's CPU seconds over the window.
"""

import argparse
import json
import resource
import threading
import time

import numpy as np

import modeld


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--start-ns", type=int, required=True)
    parser.add_argument("--warmup-seconds", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    client = modeld.Client(args.url, timeout=30, retries=0)
    client.metadata(args.model)  # cached: predict() needs no metadata call in the window
    measure_start = args.start_ns + int(args.warmup_seconds * 1e9)
    measure_end = measure_start + int(args.seconds * 1e9)
    lock = threading.Lock()
    latencies, errors, sent = [], {}, [0]

    def work(index):
        x = np.random.default_rng(index).uniform(-1, 1, (1, args.input_size)).astype(np.float32)
        mine, my_errors, my_sent = [], {}, 0
        while (now := time.monotonic_ns()) < args.start_ns:
            time.sleep(min(0.01, (args.start_ns - now) / 1e9))
        while (started := time.monotonic_ns()) < measure_end:
            my_sent += measure_start <= started
            try:
                client.predict(args.model, x)
                code = None
            except modeld.ModeldError as error:
                code = error.code
            done = time.monotonic_ns()
            if measure_start <= done < measure_end:
                if code is None:
                    mine.append(done - started)
                else:
                    my_errors[code] = my_errors.get(code, 0) + 1
        with lock:
            latencies.extend(mine)
            sent[0] += my_sent
            for code, count in my_errors.items():
                errors[code] = errors.get(code, 0) + count

    cpu = {}

    def sample_cpu():
        for name, at in (("start", measure_start), ("end", measure_end)):
            time.sleep(max(0.0, (at - time.monotonic_ns()) / 1e9))
            cpu[name] = cpu_seconds()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(args.threads)]
    threads.append(threading.Thread(target=sample_cpu))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    print(json.dumps({"latencies_ns": latencies, "sent": sent[0], "errors": errors,
                      "cpu_seconds": cpu["end"] - cpu["start"]}))


if __name__ == "__main__":
    main()
