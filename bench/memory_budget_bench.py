#!/usr/bin/env python3
"""make bench, the memory budget: 20 copies of a 24 MiB MLP behind a --model-memory-budget that
holds 5 of them, under Zipf traffic, against the same traffic with no budget (all 20 loaded).

Usage (from the repository root, after `make build`; the venv's torch writes the model):
    .venv/bin/python bench/memory_budget_bench.py [--seconds 30] [--warmup-seconds 3]
        [--base-seconds 4] [--processes 1] [--threads 16] [--zipf 1.1] [--min-residency 0,1]
        [--out bench/results/<date>-memory-budget.md]

The model. The first version of this bench served 20 copies of the examples' `cnn` (about
200 KiB of weights each). modeld measures a model as the rise of its RSS over the load, and
under 16 clients that rise moves by a few MiB whatever loads: it measured loads of cnn at
0 B to 7 MiB, so a budget meant to hold 5 copies held 1 at one moment and all 20 at another,
and the results said nothing about the policy (bench/results/2026-12-07-memory-budget.md,
first version, in git). The budget is meant for models of tens of MiB (docs/operations.md), so
the bench writes one of that size: `mlp24`, logits = Linear(256, H)-ReLU-Linear(H, H)-ReLU-
Linear(H, 10) with H = 2376, seeded, 6.28 M FP32 parameters = 24.0 MiB of weights, with the
examples' mlp config (x FP32 [256] -> logits FP32 [10], max_batch_size 64, one CPU instance,
dynamic batching). It is written by examples/generate_models.py's own writer (torch.jit.script
+ torch.jit.save) in a child process of the venv's python, and cached under
build/bench-memory-budget-model/<torch version>-h<H>/ (a few seconds the first time).

The repository (build/bench-memory-budget/repository) holds it copied 20 times as
mlp24_00..mlp24_19, each config's name changed. Phases, each on a fresh modeld:

1. probe: the 20 copies, a budget of 1 GiB (all fit), --preload-models=false. RSS before any
   request; then one request to mlp24_00 (its load also carries LibTorch's one-time start-up
   memory), then to mlp24_01, _02 and _03 in turn, each followed by a second request. A copy's
   measured size is the rise of modeld_memory_budget_used_bytes at its load; the model's size
   S is mlp24_01's (a second copy: LibTorch's start-up is not in it); _02 and _03 show the
   measurement's spread. Load time: first request - second.
2. base: the same modeld flags, then the traffic's shape (same clients, threads, input) all to
   mlp24_00 for 1 s of warm-up and --base-seconds measured. The base RSS is the median of the
   100 ms RSS samples in that window: LibTorch's runtime, the transports and the serving memory
   of the clients are in it, and so is one copy of the model. That copy is also counted in the
   budget, so the RSS target uses base - S ("net base"); the report gives both.
3. The budget: B = 5 x S + S/2. The half copy of margin covers LibTorch's start-up memory
   (counted in the first load's measurement, about 6 MiB) and the measurement's noise, and
   still leaves no room for a 6th copy.
4. evict probe: a budget of 2.5 S, --model-min-residency=0, one request at a time to copies
   00..05 (from the 3rd on each evicts one); RSS every 0.5 ms over each request: does the
   evicted copy leave before the new one loads?
5. preload check: modeld started with B and --preload-models=true, no traffic: how many copies
   it preloaded and the used bytes it reports.
6. baseline: no budget (all 20 load at start), then the traffic.
7. budget: --model-memory-budget=B, --preload-models=false, --model-min-residency=M for each M
   of --min-residency, then the traffic. Before the traffic, one request to mlp24_00 (the most
   popular copy) makes it the first loaded, so LibTorch's start-up lands on a copy that stays.

The traffic: --processes client processes of --threads threads each (modeld.Client over gRPC,
retries=0, a deadline of 30 s, one request outstanding per thread, x of shape [1, 256]), each
request to mlp24_{k-1} with k drawn from a Zipf law over 1..20 (P(k) ~ k^-s). --warmup-seconds,
then --seconds measured: the requests sent inside the window count. modeld's RSS is sampled
every 100 ms from its start to its stop.

A request is a hit when its model was loaded when the request was sent: modeld's log gives each
model's transitions ("version 1 is ready": loaded; "evicted": unloaded; at start, with
--preload-models=false, every model is unloaded), and the send time (wall clock) is placed on
that timeline. The log's 1 ms resolution and the request's time in flight before modeld reads
it can misplace a request sent within about 1 ms of a transition; the number of misses is
compared with modeld's own count (modeld_requests_waited_for_load_total over the window).

Targets: the budget run's RSS never above 1.1 x (B + net base); no request fails; the p99 of
the budget run's hits within 1.2 x the baseline's p99. Exits 0 when targets miss (a benchmark),
non-zero when a process fails. Logs go to build/bench-memory-budget/run/. A default run takes
about 3 minutes on the 2-core development machine.
"""

import argparse
import bisect
import datetime
import importlib.metadata
import json
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from harness import processes  # noqa: E402

WORK = ROOT / "build" / "bench-memory-budget"
MODEL_CACHE = ROOT / "build" / "bench-memory-budget-model"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
MODEL = "mlp24"
HIDDEN = 2376  # (256 + 1) H + (H + 1) H + (H + 1) 10 FP32 parameters = 24.0 MiB
INPUT_DIM = 256
MODELS = 20
HOLDS = 5
MARGIN = 0.5  # of one copy's size
PROBE_COPIES = 4
LARGE_BUDGET = "1G"
RSS_SLACK = 0.10
HIT_P99_SLACK = 0.20
TIMEOUT_SECONDS = 30
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \S+ (.*)$", re.M)
READY = re.compile(r"model '([^']+)' version \d+ is ready")
EVICTED = re.compile(r"model '([^']+)' evicted")
LOADED = re.compile(r"model '([^']+)' loaded \((\w+)\): ([\d.]+) (B|KiB|MiB|GiB)")
UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured per traffic phase")
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument("--base-seconds", type=float, default=4.0,
                        help="measured in the base phase (one copy served)")
    parser.add_argument("--processes", type=int, default=1, help="client processes")
    parser.add_argument("--threads", type=int, default=16, help="client threads per process")
    parser.add_argument("--zipf", type=float, default=1.1, help="the Zipf law's exponent s")
    parser.add_argument("--min-residency", default="0,1",
                        help="--model-min-residency of each budget run (comma-separated)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" /
                        f"{datetime.date.today().isoformat()}-memory-budget.md")
    return parser.parse_args(argv)


def name(index):
    return f"{MODEL}_{index:02d}"


# --- the model ------------------------------------------------------------------------------


def weight_bytes():
    return 4 * ((INPUT_DIM + 1) * HIDDEN + (HIDDEN + 1) * HIDDEN + (HIDDEN + 1) * 10)


def generate(out):
    """In a child process (--generate OUT): writes OUT/mlp24 with examples/generate_models.py's
    writer and config format, seeded."""
    sys.path.insert(0, str(ROOT / "examples"))
    import generate_models as gm
    import torch
    from torch import nn

    torch.manual_seed(gm.SEED)
    module = nn.Sequential(nn.Linear(INPUT_DIM, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN),
                           nn.ReLU(), nn.Linear(HIDDEN, 10))
    gm.write_model(Path(out), MODEL,
                   gm.config(MODEL, 64, [("x", "TYPE_FP32", [INPUT_DIM])],
                             [("logits", "TYPE_FP32", [10])],
                             "instance_group [ { count: 1, kind: KIND_CPU } ]\n"
                             "dynamic_batching { }\n"),
                   {1: module})


def model_folder():
    """The cached model folder, written first if missing."""
    key = f"torch{importlib.metadata.version('torch')}-h{HIDDEN}"
    folder = MODEL_CACHE / key / MODEL
    if not (folder / "1" / "model.pt").is_file():
        processes.log(f"writing {folder} with the venv's torch")
        staging = MODEL_CACHE / f"{key}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        subprocess.run([PYTHON, __file__, "--generate", str(staging)], check=True)
        shutil.rmtree(folder.parent, ignore_errors=True)
        staging.rename(folder.parent)
    return folder


# --- the client processes -------------------------------------------------------------------


def worker(argv):
    """One client process: --threads threads sharing one modeld.Client, from the CLOCK_MONOTONIC
    time read on stdin. Prints one JSON line: the requests sent in the window as [model, send
    time (wall ns), latency ns, error code or null], the first message of each error code, and
    this process's CPU seconds over the window. --only K sends every request to copy K."""
    import numpy as np

    import modeld

    parser = argparse.ArgumentParser()
    for flag in ("--address", "--threads", "--seed", "--warmup-seconds", "--seconds", "--zipf",
                 "--only"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args(argv)
    only = int(args.only)
    client = modeld.Client(f"grpc://{args.address}", timeout=TIMEOUT_SECONDS, retries=0)
    for index in range(MODELS):
        client.metadata(name(index))  # cached: the window holds inferences only
    weights = np.arange(1, MODELS + 1, dtype=np.float64) ** -float(args.zipf)
    weights /= weights.sum()
    print("ready", flush=True)
    start_ns = int(sys.stdin.readline())
    measure_start = start_ns + int(float(args.warmup_seconds) * 1e9)
    measure_end = measure_start + int(float(args.seconds) * 1e9)
    lock, records, cpu, messages = threading.Lock(), [], {}, {}

    def work(thread):
        rng = np.random.default_rng(int(args.seed) * 1000 + thread)
        if only >= 0:
            picks = np.full(400_000, only)
        else:
            picks = rng.choice(MODELS, size=400_000, p=weights)
        x = rng.random((1, INPUT_DIM), dtype=np.float32)
        mine = []
        while (now := time.monotonic_ns()) < start_ns:
            time.sleep(min(0.01, (start_ns - now) / 1e9))
        for pick in picks:
            sent = time.monotonic_ns()
            if sent >= measure_end:
                break
            wall = time.time_ns()
            try:
                client.infer(name(pick), {"x": x})
                code = None
            except modeld.ModeldError as error:
                code = str(error.code)
                with lock:
                    messages.setdefault(code, str(error)[:400])
            if sent >= measure_start:
                mine.append((int(pick), wall, time.monotonic_ns() - sent, code))
        with lock:
            records.extend(mine)

    def sample_cpu():
        for key, at in (("start", measure_start), ("end", measure_end)):
            time.sleep(max(0.0, (at - time.monotonic_ns()) / 1e9))
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu[key] = usage.ru_utime + usage.ru_stime

    threads = [threading.Thread(target=work, args=(i,)) for i in range(int(args.threads))]
    threads.append(threading.Thread(target=sample_cpu))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    print(json.dumps({"records": records, "cpu_seconds": cpu["end"] - cpu["start"],
                      "messages": messages}))


def traffic(args, address, logs, on_start, warmup, seconds, only=-1):
    """Runs the client processes; calls on_start(window start, monotonic seconds) once the
    start is set; returns (records, client CPU cores, window as wall seconds, window as
    monotonic seconds, {error code: first message})."""
    argv = [PYTHON, __file__, "--worker", "--address", address, "--threads", str(args.threads),
            "--warmup-seconds", str(warmup), "--seconds", str(seconds),
            "--zipf", str(args.zipf), "--only", str(only)]
    with open(logs / "clients.log", "a") as stderr:
        children = [subprocess.Popen([*argv, "--seed", str(i)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=stderr, text=True)
                    for i in range(args.processes)]
        try:
            for child in children:
                if child.stdout.readline().strip() != "ready":
                    raise RuntimeError(f"a client process failed to start; see {logs}/clients.log")
            start_ns = time.monotonic_ns() + int(0.1e9)
            for child in children:
                child.stdin.write(f"{start_ns}\n")
                child.stdin.flush()
            begin = start_ns / 1e9 + warmup
            wall_begin = time.time() + (begin - time.monotonic())
            window_wall = (wall_begin, wall_begin + seconds)
            on_start(begin)
            reports = []
            for child in children:
                output, _ = child.communicate(timeout=warmup + seconds + 300)
                if child.returncode != 0:
                    raise RuntimeError(f"a client process failed; see {logs}/clients.log")
                reports.append(json.loads(output.strip().splitlines()[-1]))
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
    records = [r for report in reports for r in report["records"]]
    cores = sum(r["cpu_seconds"] for r in reports) / seconds
    messages = {}
    for report in reports:
        for code, message in report["messages"].items():
            messages.setdefault(code, message)
    return records, cores, window_wall, (begin, begin + seconds), messages


# --- modeld ---------------------------------------------------------------------------------


def metrics(url):
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


def total(values, prefix, **labels):
    """The sum of the series of metric `prefix` whose labels include `labels`."""
    out = 0.0
    for key, value in values.items():
        metric, _, rest = key.partition("{")
        if metric == prefix and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            out += value
    return out


def start_modeld(bench, label, repository, flags):
    argv = [str(bench["bin"]), f"--model-repository={repository}", "--grpc-address=127.0.0.1:0",
            "--http-address=127.0.0.1:0", *flags]
    server, address = processes.start_grpc_server(label, argv, bench["logs"])
    return server, address, processes.metrics_url(server)


def infer_once(client, model):
    import numpy as np
    started = time.perf_counter()
    client.infer(model, {"x": np.zeros((1, INPUT_DIM), np.float32)})
    return time.perf_counter() - started


def settle_rss(pid, seconds=0.5):
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(processes.rss_bytes(pid))
        time.sleep(0.05)
    return statistics.median(samples)


def probe(bench):
    """Phase 1: RSS before any request; copies 00..03 loaded in turn: sizes and load times."""
    import modeld
    server, address, url = start_modeld(bench, "probe", bench["repository"],
                                        [f"--model-memory-budget={LARGE_BUDGET}",
                                         "--preload-models=false"])
    try:
        rss_cold = settle_rss(server.pid)
        used, loads = [0.0], []
        with modeld.Client(f"grpc://{address}", timeout=TIMEOUT_SECONDS, retries=0) as client:
            for index in range(PROBE_COPIES):
                first = infer_once(client, name(index))
                second = infer_once(client, name(index))
                loads.append(first - second)
                used.append(total(metrics(url), "modeld_memory_budget_used_bytes"))
        rss_loaded = settle_rss(server.pid)
    finally:
        server.stop()
    sizes = [after - before for before, after in zip(used, used[1:])]
    return {"rss_cold": rss_cold, "rss_loaded": rss_loaded, "sizes": sizes,
            "size": sizes[1], "load_seconds": loads, "used": used[1:]}


def base(args, bench, size):
    """Phase 2: the traffic's shape against mlp24_00 only; the median RSS over the window."""
    server, address, url = start_modeld(bench, "base", bench["repository"],
                                        [f"--model-memory-budget={LARGE_BUDGET}",
                                         "--preload-models=false"])
    sampler = processes.RssSampler(server.pid)
    try:
        records, _, _, window, messages = traffic(args, address, bench["logs"], lambda _: None,
                                                  warmup=1.0, seconds=args.base_seconds, only=0)
        used = total(metrics(url), "modeld_memory_budget_used_bytes")
    finally:
        samples = sampler.stop()
        server.stop()
    offset = window[0] - sampler.start_time
    inside = sorted(rss for t, rss in samples if offset <= t < offset + args.base_seconds)
    rss = statistics.median(inside)
    errors = sum(1 for r in records if r[3] is not None)
    return {"rss": rss, "net": rss - size, "max": inside[-1], "min": inside[0],
            "samples": len(inside), "requests": len(records), "errors": errors,
            "messages": messages, "used": used,
            "latency": percentiles([r[2] for r in records if r[3] is None])}


def preload_check(bench, budget):
    """Phase 4: --preload-models=true with the budget; what it loads and reports, no traffic."""
    server, _, url = start_modeld(bench, "preload-check", bench["repository"],
                                  [f"--model-memory-budget={budget}"])
    try:
        values = metrics(url)
        rss = settle_rss(server.pid)
    finally:
        server.stop()
    return {"preloaded": total(values, "modeld_model_loads_total", cause="preload"),
            "used": total(values, "modeld_memory_budget_used_bytes"),
            "budget": total(values, "modeld_memory_budget_bytes"), "rss": rss,
            "sizes": measured_sizes(server.log())}


def evict_probe(bench, size):
    """Phase 3b: a budget of 2.5 S, --model-min-residency=0, one request at a time to copies
    00..05: from the 3rd on each load evicts one copy. RSS sampled every 0.5 ms over each
    request: the steady RSS before, the peak during, the RSS after."""
    import modeld
    server, address, _ = start_modeld(bench, "evict-probe", bench["repository"],
                                      [f"--model-memory-budget={int(2.5 * size)}",
                                       "--preload-models=false", "--model-min-residency=0"])
    rows = []
    try:
        with modeld.Client(f"grpc://{address}", timeout=TIMEOUT_SECONDS, retries=0) as client:
            for index in range(6):
                before = settle_rss(server.pid, 0.3)
                samples, stop = [], threading.Event()

                def sample():
                    while not stop.is_set():
                        samples.append(processes.rss_bytes(server.pid))
                        time.sleep(0.0005)

                thread = threading.Thread(target=sample)
                thread.start()
                seconds = infer_once(client, name(index))
                stop.set()
                thread.join()
                rows.append({"model": name(index), "before": before, "peak": max(samples),
                             "after": settle_rss(server.pid, 0.3), "seconds": seconds})
    finally:
        server.stop()
    evictions = len(EVICTED.findall(server.log()))
    return {"rows": rows, "evictions": evictions}


def timeline(log_text, preloaded):
    """{model: ([transition wall seconds], [loaded after it])} from modeld's log."""
    events = {name(i): ([float("-inf")], [preloaded]) for i in range(MODELS)}
    for stamp, message in LOG_TIME.findall(log_text):
        for pattern, loaded in ((READY, True), (EVICTED, False)):
            match = pattern.search(message)
            if match and match.group(1) in events:
                at = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
                events[match.group(1)][0].append(at)
                events[match.group(1)][1].append(loaded)
    return events


def loaded_at(events, model, wall_seconds):
    times, states = events[model]
    return states[bisect.bisect_right(times, wall_seconds) - 1]


def unloaded_seconds(events, model, window):
    """How long `model` was unloaded inside the window (wall seconds), from the timeline."""
    times, states = events[model]
    out = 0.0
    for i, (at, loaded) in enumerate(zip(times, states)):
        until = times[i + 1] if i + 1 < len(times) else window[1]
        if not loaded:
            out += max(0.0, min(until, window[1]) - max(at, window[0]))
    return out


def percentiles(values):
    values = sorted(values)
    return {"count": len(values), "p50_ms": processes.percentile(values, 0.5) / 1e6,
            "p99_ms": processes.percentile(values, 0.99) / 1e6,
            "max_ms": (values[-1] / 1e6) if values else 0.0}


def traffic_phase(args, bench, label, flags, budgeted):
    """A fresh modeld on the 20 copies with `flags`, the traffic, RSS sampled every 100 ms."""
    import modeld
    server, address, url = start_modeld(bench, label, bench["repository"], flags)
    sampler = processes.RssSampler(server.pid)
    try:
        if budgeted:  # mlp24_00 first: it carries LibTorch's start-up memory (module doc)
            with modeld.Client(f"grpc://{address}", timeout=TIMEOUT_SECONDS, retries=0) as c:
                infer_once(c, name(0))
        snapshots, watchers = {}, {}

        def scrape(begin):
            time.sleep(max(0.0, begin - time.monotonic()))
            snapshots["start"] = metrics(url)

        def on_start(begin):
            watchers["scraper"] = threading.Thread(target=scrape, args=(begin,), daemon=True)
            watchers["scraper"].start()
            watchers["cpu"] = processes.CpuWindow({"modeld": [server.pid]}, int(begin * 1e9),
                                                  int((begin + args.seconds) * 1e9))

        records, client_cores, window_wall, window_mono, messages = traffic(
            args, address, bench["logs"], on_start, args.warmup_seconds, args.seconds)
        watchers["scraper"].join()
        snapshots["end"] = metrics(url)
        modeld_cores = watchers["cpu"].cores()["modeld"]
    finally:
        samples = sampler.stop()
        server.stop()
    events = timeline(server.log(), preloaded=not budgeted)
    hits, misses, errors, failed_models = [], [], {}, [0] * MODELS
    for model, wall_ns, latency_ns, code in records:
        if code is not None:
            errors[code] = errors.get(code, 0) + 1
            failed_models[model] += 1
        elif loaded_at(events, name(model), wall_ns / 1e9):
            hits.append(latency_ns)
        else:
            misses.append(latency_ns)
    start, end = snapshots["start"], snapshots["end"]

    def delta(metric, **labels):
        return total(end, metric, **labels) - total(start, metric, **labels)

    offset = window_mono[0] - sampler.start_time
    inside = sorted(rss for t, rss in samples if offset <= t < offset + args.seconds)
    requests = len(records)

    return {
        "label": label, "flags": flags, "requests": requests,
        "req_per_s": requests / args.seconds, "client_cores": client_cores,
        "modeld_cores": modeld_cores, "hits": percentiles(hits), "misses": percentiles(misses),
        "hit_rate": len(hits) / max(1, len(hits) + len(misses)), "errors": errors,
        "waited": delta("modeld_requests_waited_for_load_total"),
        "waited_failed": delta("modeld_requests_waited_for_load_total", outcome="failed"),
        "loaded_at_end": sum(states[-1] for _, states in events.values()),
        "loads": delta("modeld_model_loads_total"),
        "evictions": delta("modeld_model_evictions_total"),
        "budget": total(end, "modeld_memory_budget_bytes"),
        "used_end": total(end, "modeld_memory_budget_used_bytes"),
        "per_model": [sum(1 for r in records if r[0] == i) for i in range(MODELS)],
        "failed_per_model": failed_models, "messages": messages,
        "top_unloaded_seconds": unloaded_seconds(events, name(0), window_wall),
        "rss": {"max_all": max(rss for _, rss in samples),
                "max_at": max(samples, key=lambda sample: sample[1])[0] - offset,
                "max": inside[-1] if inside else 0, "p99": processes.percentile(inside, 0.99),
                "median": statistics.median(inside) if inside else 0,
                "samples": len(samples)},
        "rss_samples": samples, "window_wall": window_wall,
        "error_examples": error_examples(server.log()),
        "sizes": measured_sizes(server.log()),
    }


def measured_sizes(log_text):
    """The sizes modeld logged for its loads under the budget, in order: (model, cause, bytes)."""
    return [(model, cause, float(value) * UNITS[unit])
            for model, cause, value, unit in LOADED.findall(log_text)]


def error_examples(log_text):
    lines = [line for line in log_text.splitlines() if "cannot load" in line]
    return lines[:1] + lines[-1:] if len(lines) > 1 else lines


# --- the report -----------------------------------------------------------------------------


def mib(value):
    return f"{value / 2**20:.1f}"


def compute_targets(baseline, runs, base_phase, budget):
    """The targets; the RSS limit uses the net base (module doc), the literal base is shown."""
    rows = []
    net, literal = base_phase["net"], base_phase["rss"]
    rss_limit = (1 + RSS_SLACK) * (budget + net)
    literal_limit = (1 + RSS_SLACK) * (budget + literal)
    for run in [baseline, *runs]:
        label = run["label"]
        if run is not baseline:
            over = sum(1 for _, rss in run["rss_samples"] if rss > rss_limit)
            rows.append(target(
                f"{label}: RSS", f"≤ 1.1 × (budget + net base) = 1.1 × ({mib(budget)} + "
                f"{mib(net)}) = {mib(rss_limit)} MiB (with the base as served, "
                f"{mib(literal)}: {mib(literal_limit)} MiB)",
                f"max {mib(run['rss']['max_all'])} MiB (window p99 {mib(run['rss']['p99'])}); "
                f"{over} of {run['rss']['samples']} samples above",
                f"{run['rss']['max_all'] / rss_limit:.2f} × limit",
                run["rss"]["max_all"] <= rss_limit))
        failed = sum(run["errors"].values())
        rows.append(target(f"{label}: errors", "0", f"{failed} of {run['requests']}"
                           + (f" ({error_text(run['errors'])})" if failed else ""), "",
                           failed == 0))
        if run is not baseline:
            limit = (1 + HIT_P99_SLACK) * baseline["hits"]["p99_ms"]
            p99 = run["hits"]["p99_ms"]
            rows.append(target(
                f"{label}: hit p99", f"≤ 1.2 × baseline p99 ({baseline['hits']['p99_ms']:.2f} "
                f"ms) = {limit:.2f} ms", f"{p99:.2f} ms of {run['hits']['count']} hits",
                f"{p99 / baseline['hits']['p99_ms']:.2f}× baseline",
                run["hits"]["count"] > 0 and p99 <= limit))
    return rows


def lru_hit_rate(zipf, draws=200_000):
    """The hit rate of an LRU cache of HOLDS models under the traffic's Zipf law, requests
    one at a time (a reference for the runs' hit rates)."""
    import random
    from collections import OrderedDict
    rng = random.Random(1)
    picks = rng.choices(range(MODELS), weights=[k ** -zipf for k in range(1, MODELS + 1)],
                        k=draws)
    cache, hits = OrderedDict(), 0
    for pick in picks:
        if pick in cache:
            hits += 1
            cache.move_to_end(pick)
        else:
            cache[pick] = True
            if len(cache) > HOLDS:
                cache.popitem(last=False)
    return hits / draws


def target(name_, requirement, measured, value, ok):
    return {"name": name_, "requirement": requirement, "measured": measured, "value": value,
            "result": "MET" if ok else "MISS"}


def error_text(errors):
    return ", ".join(f"{code} {count}" for code, count in sorted(errors.items())) or "0"


def render(info, probe_phase, base_phase, preload, evicting, baseline, runs, rows):
    budget, size = info["budget"], probe_phase["size"]
    out = [f"# modeld memory budget benchmark, {info['date']}", "",
           f"- Command: `{info['command']}`", f"- Tree: {info['commit']}",
           f"- Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']:.0f} GiB; the "
           "client processes and modeld share these CPUs.",
           f"- Whole run: {info['elapsed_seconds']:.0f} s. {info['load']}",
           f"- Model: 20 copies of `{MODEL}` (written by the bench, {info['model_folder']}): "
           f"Linear({INPUT_DIM}, {HIDDEN})-ReLU-Linear({HIDDEN}, {HIDDEN})-ReLU-"
           f"Linear({HIDDEN}, 10), {mib(weight_bytes())} MiB of FP32 weights, model.pt "
           f"{mib(info['model_file'])} MiB; the examples' mlp config (max_batch_size 64, one CPU "
           "instance, dynamic batching). Why not cnn: see \"Why this model\" below.",
           f"- Traffic: {info['clients']}, modeld.Client over gRPC (retries=0, deadline "
           f"{TIMEOUT_SECONDS} s), one request outstanding per thread; x FP32 [1, {INPUT_DIM}] to "
           f"{MODEL}_(k-1) with k Zipf-distributed over 1..{MODELS} (s = {info['zipf']}); "
           f"{info['warmup']:g} s warm-up, then {info['seconds']:g} s measured (the requests "
           "sent in it). RSS (VmRSS) sampled every 100 ms from modeld's start to its stop.",
           f"- Budget: 5 × S + S/2 = {mib(budget)} MiB (`--model-memory-budget={budget}`), "
           f"S = {mib(size)} MiB (below).", "",
           "## Targets", "", "| target | requirement | measured | ratio | result |",
           "|---|---|---|---|---|"]
    out += [f"| {t['name']} | {t['requirement']} | {t['measured']} | {t['value']} "
            f"| **{t['result']}** |" for t in rows]
    out += ["", "## Runs", "",
            "| run | req/s | hit rate | hits p50 / p99 ms | misses p50 / p99 ms "
            "| misses (log) / waited, served / failed (metric) | loads/s | evictions | errors "
            f"| RSS max / window p99 / median MiB | used at end MiB | loaded at end "
            f"| {name(0)} unloaded | client CPU | modeld CPU |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in [baseline, *runs]:
        h, m = run["hits"], run["misses"]
        out.append(
            f"| {run['label']} | {run['req_per_s']:.0f} | {run['hit_rate']:.1%} "
            f"| {h['p50_ms']:.2f} / {h['p99_ms']:.2f} "
            f"| {m['p50_ms']:.1f} / {m['p99_ms']:.1f} "
            f"| {m['count']} / {run['waited'] - run['waited_failed']:.0f} / "
            f"{run['waited_failed']:.0f} | {run['loads'] / info['seconds']:.2f} "
            f"| {run['evictions']:.0f} | {error_text(run['errors'])} "
            f"| {mib(run['rss']['max_all'])} / {mib(run['rss']['p99'])} / "
            f"{mib(run['rss']['median'])} | {mib(run['used_end'])} | {run['loaded_at_end']} "
            f"| {run['top_unloaded_seconds']:.1f} s | {run['client_cores']:.2f} "
            f"| {run['modeld_cores']:.2f} |")
    out += ["", "Flags: " + "; ".join(f"{run['label']}: `{' '.join(run['flags']) or '(none)'}`"
                                     for run in [baseline, *runs]) + ".", ""]
    share = [f"{n / max(1, sum(baseline['per_model'])):.1%}" for n in baseline["per_model"][:6]]
    out += [f"Traffic share of {name(0)}..{name(5)} (baseline run): {', '.join(share)}; the "
            f"top {HOLDS} together "
            f"{sum(baseline['per_model'][:HOLDS]) / max(1, sum(baseline['per_model'])):.1%}, "
            f"the most a cache of {HOLDS} could hit; one request at a time through an LRU "
            f"cache of {HOLDS} would hit {lru_hit_rate(float(info['zipf'])):.1%} (simulated, "
            "200,000 draws).", ""]
    for run in runs:
        sizes = sorted(entry[2] for entry in run["sizes"])
        if sizes:
            largest = max(run["sizes"], key=lambda entry: entry[2])
            out.append(f"- {run['label']}: modeld logged {len(sizes)} loads ({name(0)}'s first "
                       f"included) at {mib(sizes[0])} to {mib(sizes[-1])} MiB (the log rounds "
                       f"to 1 MiB), median {mib(statistics.median(sizes))} MiB; the largest, "
                       f"{largest[0]}, {mib(largest[2])} MiB. RSS peaked at "
                       f"{run['rss']['max_at']:+.1f} s from the window's start (negative: in "
                       "the warm-up).")
        if run["errors"]:
            failed = ", ".join(f"{name(i)} {n}" for i, n in enumerate(run["failed_per_model"])
                               if n)
            out.append(f"- {run['label']}: failed requests by model: {failed}.")
            for code, message in sorted(run["messages"].items()):
                out.append(f"- {run['label']}, a client's {code}: `{message}`")
        for line in run["error_examples"]:
            out.append(f"- {run['label']}, modeld's log: `{line.strip()[:400]}`")
    probe_sizes = ", ".join(f"{name(i)} {mib(s)}" for i, s in enumerate(probe_phase["sizes"]))
    loads = ", ".join(f"{t * 1e3:.0f}" for t in probe_phase["load_seconds"])
    lat = base_phase["latency"]
    out += ["", "## Sizes and the base", "",
            f"- Probe (the 20 copies, `--model-memory-budget={LARGE_BUDGET}` "
            f"--preload-models=false, no traffic): RSS {mib(probe_phase['rss_cold'])} MiB before "
            f"any request; loaded in turn, modeld measured {probe_sizes} MiB "
            f"({name(0)} also carries LibTorch's start-up); RSS with {PROBE_COPIES} loaded "
            f"{mib(probe_phase['rss_loaded'])} MiB. Load time (first request − second): "
            f"{loads} ms. **S = {name(1)}'s measurement = {mib(size)} MiB** "
            f"({int(size)} B; the file is {info['model_file']} B).",
            f"- Base (same flags, the traffic's clients all on {name(0)}, 1 s warm-up + "
            f"{info['base_seconds']:g} s): RSS median {mib(base_phase['rss'])} MiB over "
            f"{base_phase['samples']} samples (min {mib(base_phase['min'])}, max "
            f"{mib(base_phase['max'])}); {base_phase['requests']} requests, "
            f"{base_phase['errors']} errors, p50 / p99 {lat['p50_ms']:.2f} / {lat['p99_ms']:.2f} "
            f"ms; budget used {mib(base_phase['used'])} MiB ({name(0)} with LibTorch's "
            f"start-up).",
            f"- The rule: the base is modeld's RSS with the same repository and "
            f"--preload-models=false while it serves the traffic's shape ({info['clients']}) "
            f"on one copy for a few seconds: LibTorch's runtime, the transports and the memory "
            f"of the requests in flight are in it. That one copy ({mib(size)} MiB) is in it too "
            f"and is also counted in the budget, so the RSS target adds the **net base** = "
            f"{mib(base_phase['rss'])} − {mib(size)} = {mib(base_phase['net'])} MiB to the "
            f"budget (the base as served would add {mib(size)} MiB of slack; the target row "
            f"gives both limits).",
            f"- Budget: 5 × S + S/2 = {mib(budget)} MiB: the half copy of margin covers "
            f"LibTorch's start-up (counted in the first load, "
            f"{mib(probe_phase['sizes'][0] - size)} MiB here) and the measurement's noise; a "
            "6th copy does not fit.",
            f"- Preload check (`--model-memory-budget={info['budget_flag']}`, "
            f"--preload-models=true, no traffic): {preload['preloaded']:.0f} copies preloaded, "
            f"used {mib(preload['used'])} MiB of a {mib(preload['budget'])} MiB budget, RSS "
            f"{mib(preload['rss'])} MiB.",
            f"- Evict probe (`--model-memory-budget=` 2.5 × S, --model-min-residency=0, "
            f"--preload-models=false, one request at a time to {name(0)}..{name(5)}, RSS "
            f"sampled every 0.5 ms during each; {evicting['evictions']} evictions): "
            + "; ".join(f"{r['model']} {mib(r['before'])} → peak {mib(r['peak'])} → "
                        f"{mib(r['after'])} MiB ({r['seconds'] * 1e3:.0f} ms)"
                        for r in evicting["rows"])
            + ". From the 3rd request on each load evicts one copy: a peak one copy above the "
            "steady RSS means the evicted copy was still resident while the new one loaded.",
            ""]
    out += ["## Why this model", "",
            "The first version of this benchmark (same file, earlier today) served 20 copies of "
            "the examples' `cnn`, about 200 KiB of weights each. modeld measures a model as the "
            "rise of its RSS over the load, and under 16 clients that rise moves by a few MiB "
            "whatever loads: it measured cnn loads at 0 B to 7 MiB, so a budget meant for 5 "
            "copies held 1 at one moment and all 20 at another, and the run said nothing about "
            "the policy. The budget is meant for models of tens of MiB (docs/operations.md); the "
            "examples' largest, mlp, has 1.5 MiB of weights, still inside the noise, so the "
            f"bench writes a {mib(weight_bytes())} MiB MLP with the examples' writer "
            "(examples/generate_models.py: torch.jit.script + torch.jit.save, seeded) and the "
            "mlp's config, cached under build/.", ""]
    out += ["## Hit rule", "",
            "A request is a hit when its model was loaded when it was sent: on modeld's log, "
            "`version N is ready` marks a model loaded and `evicted` unloaded (with "
            "--preload-models=false every model starts unloaded), and each request's send time "
            "(wall clock) is placed on that timeline. The table gives the misses found so beside "
            "modeld_requests_waited_for_load_total{outcome=\"served\"} over the window; a request "
            "sent within about 1 ms of a transition may be misplaced. Errors (a failed wait "
            "included) are neither hits nor misses. Loads/s and evictions: "
            "modeld_model_loads_total and modeld_model_evictions_total over the window; "
            "loaded at end: from the log's timeline.", ""]
    return "\n".join(out)


def main():
    args = parse_args()
    started = time.monotonic()
    load_before = processes.warn_if_loaded("memory_budget_bench")
    run_start = processes.cpu_seconds()
    work = WORK / "run"
    binary = ROOT / "build" / "bin" / "modeld"
    if not binary.is_file():
        sys.exit("memory_budget_bench: run `make build` first")
    source = model_folder()
    shutil.rmtree(WORK, ignore_errors=True)
    (work / "logs").mkdir(parents=True)
    bench = {"bin": work / "modeld", "logs": work / "logs", "repository": WORK / "repository"}
    shutil.copy2(binary, bench["bin"])  # a rebuild cannot swap it mid-run
    for index in range(MODELS):
        folder = bench["repository"] / name(index)
        shutil.copytree(source, folder)
        config = folder / "config.pbtxt"
        config.write_text(re.sub(r'^name:\s*"[^"]*"', f'name: "{name(index)}"',
                                 config.read_text(), count=1, flags=re.M))

    processes.log(f"probe: {PROBE_COPIES} copies loaded in turn")
    probe_phase = probe(bench)
    size = probe_phase["size"]
    processes.log(f"base: the traffic against {name(0)} only")
    base_phase = base(args, bench, size)
    budget = int((HOLDS + MARGIN) * size)
    budget_flag = str(budget)
    processes.log(f"budget {mib(budget)} MiB; preload check")
    preload = preload_check(bench, budget_flag)
    processes.log("evict probe: 2.5 copies' budget, loads that evict")
    evicting = evict_probe(bench, size)
    processes.log("baseline: no budget, all 20 loaded")
    baseline = traffic_phase(args, bench, "baseline (no budget)", [], budgeted=False)
    runs = []
    for residency in args.min_residency.split(","):
        processes.log(f"budget, --model-min-residency={residency}")
        runs.append(traffic_phase(
            args, bench, f"budget, min-residency {residency} s",
            [f"--model-memory-budget={budget_flag}", "--preload-models=false",
             f"--model-min-residency={residency}"], budgeted=True))
    rows = compute_targets(baseline, runs, base_phase, budget)

    elapsed = time.monotonic() - started
    machine, ours = processes.cpu_seconds()
    others = max(0.0, (machine - run_start[0]) - (ours - run_start[1]))
    share = others / (elapsed * processes.nproc())
    info = {"date": datetime.date.today().isoformat(),
            "command": shlex.join([".venv/bin/python", "bench/memory_budget_bench.py",
                                   *sys.argv[1:]]),
            "commit": processes.commit_line(ROOT, "bench/"), "nproc": processes.nproc(),
            "cpu": processes.cpu_model(), "memory_gib": processes.memory_gib(),
            "elapsed_seconds": elapsed, "budget": budget, "budget_flag": budget_flag,
            "zipf": args.zipf, "warmup": args.warmup_seconds, "seconds": args.seconds,
            "base_seconds": args.base_seconds, "model_folder": str(source.relative_to(ROOT)),
            "model_file": (source / "1" / "model.pt").stat().st_size,
            "clients": f"{args.processes} client process(es) × {args.threads} threads",
            "load": f"Load average {load_before:.2f} before the run; other processes used "
                    f"{others:.0f} CPU-seconds during it ({share:.1%} of the machine)"
                    + (": **other work skewed these figures**." if share > 0.05 else ".")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(info, probe_phase, base_phase, preload, evicting, baseline, runs,
                               rows)
                        + "\n")
    (work / "results.json").write_text(json.dumps(
        {"info": info, "probe": probe_phase, "base": base_phase, "preload": preload,
         "evict_probe": evicting,
         "baseline": baseline, "runs": runs, "targets": rows}, indent=1, default=str))
    for t in rows:
        print(f"{t['result']:4}  {t['name']}: {t['measured']}"
              + (f" ({t['value']})" if t["value"] else ""))
    processes.log(f"wrote {args.out} in {elapsed:.0f} s")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
    elif len(sys.argv) > 2 and sys.argv[1] == "--generate":
        generate(sys.argv[2])
    else:
        main()
