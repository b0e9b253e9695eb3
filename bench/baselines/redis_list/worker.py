#!/usr/bin/env python3
"""The original design, as a baseline: a Python worker holding the model, fed by a Redis list.

Usage (bench/run.py starts it; the venv's torch and redis-py):
    .venv/bin/python bench/baselines/redis_list/worker.py --port P --model M/1/model.pt \
        --shape 256 --threads 1

The web tier LPUSHes a request onto one list; each worker BRPOPs it, runs the model on that ONE
item (no batching), and LPUSHes the answer onto ONE shared results list, which every web
worker BRPOPs. There is no per-request reply key, so a web worker pops whichever answer is
oldest, not necessarily its own: under concurrency the answers are mixed up between requests.
That is why modeld does not use this design (its Redis transport writes each reply to the
request's own key); client.py counts how often it happens.

Message layout (both directions): 8-byte request id, 8-byte send time (CLOCK_MONOTONIC ns,
shared by the processes of one machine), then the tensor's raw little-endian bytes.
"""

import argparse

import redis
import torch

HEADER_BYTES = 16
REQUESTS = "modeld-bench:requests"
RESULTS = "modeld-bench:results"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True, help="TorchScript file")
    parser.add_argument("--shape", required=True, help="one item's dims, e.g. 256 or 1,28,28")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    shape = [1] + [int(d) for d in args.shape.split(",")]
    model = torch.jit.load(args.model).eval()
    client = redis.Redis(host="127.0.0.1", port=args.port)
    client.ping()
    print("worker ready", flush=True)
    while True:
        _, message = client.brpop(REQUESTS)
        header, payload = message[:HEADER_BYTES], message[HEADER_BYTES:]
        x = torch.frombuffer(bytearray(payload), dtype=torch.float32).reshape(shape)
        with torch.inference_mode():
            y = model(x)
        client.lpush(RESULTS, header + y.numpy().tobytes())


if __name__ == "__main__":
    main()
