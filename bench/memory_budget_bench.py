#!/usr/bin/env python3
"""make bench, the memory budget: 20 copies of `cnn` behind a --model-memory-budget that holds
5 of them, under Zipf traffic, against the same traffic with no budget (all 20 loaded).

Usage (from the repository root, after `make build models`):
    .venv/bin/python bench/memory_budget_bench.py [--seconds 30] [--warmup-seconds 3]
        [--processes 1] [--threads 16] [--zipf 1.1] [--min-residency 10,0]
        [--out bench/results/<date>-memory-budget.md]

The repository (build/bench-memory-budget/repository) holds examples/models/cnn copied 20 times
as cnn_00..cnn_19, each config's name changed. Phases, each on a fresh modeld:

1. one cnn: modeld with only `cnn`, a budget of 1 GiB and --preload-models=false; RSS (VmRSS)
   before and after its first request, and the size modeld measured for it
   (modeld_memory_budget_used_bytes).
2. base: the 20 copies, a budget of 1 GiB and --preload-models=false; the base RSS is the
   median of VmRSS over 0.5 s before any request. Then one request to each model in turn
   (each loads it) and a second one: the marginal size of a model is (used after the 20th load
   - used after the 1st) / 19, and its load time the median over the 19 of (first request -
   second). The first load also carries what the runtime allocates once per process, so the
   1st model's size is reported apart.
3. preload check: modeld started with the budget of phase 4 and --preload-models=true; how
   many models it preloaded and the used bytes it reports against the budget (no traffic).
4. baseline: no budget (all 20 load at start), then the traffic.
5. budget: --model-memory-budget=B, --preload-models=false, --model-min-residency=M for each M
   of --min-residency, then the traffic. Before the traffic, one request to cnn_00 (the most
   popular model) makes it the first model loaded, so the runtime's one-time memory that modeld
   counts in the first load's size lands on a model that stays loaded. B = that first size +
   4.5 marginal sizes: cnn_00 and 4 more models fit, a 6th does not.

The traffic: --processes client processes of --threads threads each (modeld.Client over gRPC,
retries=0, one request outstanding per thread, a 1x1x28x28 image), each request to cnn_{k-1}
with k drawn from a Zipf law over 1..20 (P(k) ~ k^-s). --warmup-seconds, then --seconds
measured: the requests sent inside the window count. modeld's RSS is sampled every 100 ms from
its start to its stop.

A request is a hit when its model was loaded when the request was sent: modeld's log gives each
model's transitions ("version 1 is ready": loaded; "evicted": unloaded; at start, with
--preload-models=false, every model is unloaded), and the send time (wall clock) is placed on
that timeline. The log's 1 ms resolution and the request's time in flight before modeld reads
it can misplace a request sent within about 1 ms of a transition; the number of misses is
compared with modeld's own count (modeld_requests_waited_for_load_total over the window).

Targets: the budget run's RSS never above 1.1 x (budget + base); no request fails; the p99 of
the budget run's hits within 1.2 x the baseline's p99. Exits 0 when targets miss (a benchmark),
non-zero when a process fails. Logs go to build/bench-memory-budget/run/. A default run takes
about 2 minutes on the 2-core development machine.
"""

import argparse
import bisect
import datetime
import json
import os
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
PYTHON = str(ROOT / ".venv" / "bin" / "python")
MODELS = 20
HOLDS = 5
LARGE_BUDGET = "1G"
RSS_SLACK = 0.10
HIT_P99_SLACK = 0.20
TIMEOUT_SECONDS = 60
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \S+ (.*)$", re.M)
READY = re.compile(r"model '([^']+)' version \d+ is ready")
EVICTED = re.compile(r"model '([^']+)' evicted")
LOADED = re.compile(r"model '([^']+)' loaded \((\w+)\): ([\d.]+) (B|KiB|MiB|GiB)")
UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured per traffic phase")
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument("--processes", type=int, default=1, help="client processes")
    parser.add_argument("--threads", type=int, default=16, help="client threads per process")
    parser.add_argument("--zipf", type=float, default=1.1, help="the Zipf law's exponent s")
    parser.add_argument("--min-residency", default="10,0",
                        help="--model-min-residency of each budget run (comma-separated)")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "examples" / "models")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" /
                        f"{datetime.date.today().isoformat()}-memory-budget.md")
    return parser.parse_args(argv)


def name(index):
    return f"cnn_{index:02d}"


# --- the client processes -------------------------------------------------------------------


def worker(argv):
    """One client process: --threads threads sharing one modeld.Client, from the CLOCK_MONOTONIC
    time read on stdin. Prints one JSON line: the requests sent in the window as [model, send
    time (wall ns), latency ns, error code or null], and this process's CPU seconds over it."""
    import numpy as np

    import modeld

    parser = argparse.ArgumentParser()
    for flag in ("--address", "--threads", "--seed", "--warmup-seconds", "--seconds", "--zipf"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args(argv)
    client = modeld.Client(f"grpc://{args.address}", timeout=TIMEOUT_SECONDS, retries=0)
    for index in range(MODELS):
        client.metadata(name(index))  # cached: the window holds inferences only
    weights = np.arange(1, MODELS + 1, dtype=np.float64) ** -float(args.zipf)
    weights /= weights.sum()
    print("ready", flush=True)
    start_ns = int(sys.stdin.readline())
    measure_start = start_ns + int(float(args.warmup_seconds) * 1e9)
    measure_end = measure_start + int(float(args.seconds) * 1e9)
    lock, records, cpu = threading.Lock(), [], {}

    def work(thread):
        rng = np.random.default_rng(int(args.seed) * 1000 + thread)
        picks = rng.choice(MODELS, size=200_000, p=weights)
        x = rng.random((1, 1, 28, 28), dtype=np.float32)
        mine = []
        while (now := time.monotonic_ns()) < start_ns:
            time.sleep(min(0.01, (start_ns - now) / 1e9))
        for pick in picks:
            sent = time.monotonic_ns()
            if sent >= measure_end:
                break
            wall = time.time_ns()
            try:
                client.infer(name(pick), {"image": x})
                code = None
            except modeld.ModeldError as error:
                code = str(error.code)
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
    print(json.dumps({"records": records, "cpu_seconds": cpu["end"] - cpu["start"]}))


def traffic(args, address, logs, on_start):
    """Runs the client processes; calls on_start(window start, monotonic seconds) once the
    start is set; returns (records, client CPU cores, window as wall seconds, window as
    monotonic seconds)."""
    argv = [PYTHON, __file__, "--worker", "--address", address, "--threads", str(args.threads),
            "--warmup-seconds", str(args.warmup_seconds), "--seconds", str(args.seconds),
            "--zipf", str(args.zipf)]
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
            begin = start_ns / 1e9 + args.warmup_seconds
            wall_begin = time.time() + (begin - time.monotonic())
            window_wall = (wall_begin, wall_begin + args.seconds)
            on_start(begin)
            reports = []
            for child in children:
                output, _ = child.communicate(timeout=args.warmup_seconds + args.seconds + 300)
                if child.returncode != 0:
                    raise RuntimeError(f"a client process failed; see {logs}/clients.log")
                reports.append(json.loads(output.strip().splitlines()[-1]))
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
    records = [r for report in reports for r in report["records"]]
    cores = sum(r["cpu_seconds"] for r in reports) / args.seconds
    return records, cores, window_wall, (begin, begin + args.seconds)


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
    client.infer(model, {"image": np.zeros((1, 1, 28, 28), np.float32)})
    return time.perf_counter() - started


def settle_rss(pid, seconds=0.5):
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(processes.rss_bytes(pid))
        time.sleep(0.05)
    return statistics.median(samples)


def one_cnn(bench):
    """Phase 1: modeld with only cnn; RSS before/after its first request, its measured size."""
    import modeld
    server, address, url = start_modeld(bench, "one-cnn", bench["one"],
                                        [f"--model-memory-budget={LARGE_BUDGET}",
                                         "--preload-models=false"])
    try:
        before = settle_rss(server.pid)
        with modeld.Client(f"grpc://{address}", timeout=TIMEOUT_SECONDS, retries=0) as client:
            infer_once(client, "cnn")
            after = settle_rss(server.pid)
            infer_once(client, "cnn")
        used = total(metrics(url), "modeld_memory_budget_used_bytes")
    finally:
        server.stop()
    return {"rss_before": before, "rss_after": after, "measured": used}


def base(bench):
    """Phase 2: base RSS; then each of the 20 loaded in turn: sizes and load times."""
    import modeld
    server, address, url = start_modeld(bench, "base", bench["repository"],
                                        [f"--model-memory-budget={LARGE_BUDGET}",
                                         "--preload-models=false"])
    try:
        rss = settle_rss(server.pid)
        used, loads = [], []
        with modeld.Client(f"grpc://{address}", timeout=TIMEOUT_SECONDS, retries=0) as client:
            for index in range(MODELS):
                first = infer_once(client, name(index))
                second = infer_once(client, name(index))
                loads.append(first - second)
                used.append(total(metrics(url), "modeld_memory_budget_used_bytes"))
        rss_all = settle_rss(server.pid)
    finally:
        server.stop()
    marginal = (used[-1] - used[0]) / (MODELS - 1)
    return {"rss": rss, "rss_all_loaded": rss_all, "first_size": used[0], "marginal": marginal,
            "used": used, "load_seconds": statistics.median(loads[1:]),
            "first_load_seconds": loads[0]}


def preload_check(bench, budget):
    """Phase 3: --preload-models=true with the budget; what it loads and reports, no traffic."""
    server, _, url = start_modeld(bench, "preload-check", bench["repository"],
                                  [f"--model-memory-budget={budget}"])
    try:
        values = metrics(url)
        rss = settle_rss(server.pid)
    finally:
        server.stop()
    return {"preloaded": total(values, "modeld_model_loads_total", cause="preload"),
            "used": total(values, "modeld_memory_budget_used_bytes"),
            "budget": total(values, "modeld_memory_budget_bytes"), "rss": rss}


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
        if budgeted:  # cnn_00 first: it carries the runtime's one-time memory (module doc)
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

        records, client_cores, window_wall, window_mono = traffic(args, address, bench["logs"],
                                                                  on_start)
        watchers["scraper"].join()
        snapshots["end"] = metrics(url)
        modeld_cores = watchers["cpu"].cores()["modeld"]
    finally:
        samples = sampler.stop()
        server.stop()
    events = timeline(server.log(), preloaded=not budgeted)
    hits, misses, errors = [], [], {}
    for model, wall_ns, latency_ns, code in records:
        if code is not None:
            errors[code] = errors.get(code, 0) + 1
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
        "rss": {"max_all": max(rss for _, rss in samples),
                "max": inside[-1] if inside else 0, "p99": processes.percentile(inside, 0.99),
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
    lines = [line for line in log_text.splitlines() if "cannot load on demand" in line]
    return lines[:1] + lines[-1:] if len(lines) > 1 else lines


# --- the report -----------------------------------------------------------------------------


def mib(value):
    return f"{value / 2**20:.1f}"


def compute_targets(baseline, runs, base_rss, budget):
    rows = []
    rss_limit = (1 + RSS_SLACK) * (budget + base_rss)
    for run in [baseline, *runs]:
        label = run["label"]
        if run is not baseline:
            rows.append(target(
                f"{label}: RSS", f"≤ 1.1 × (budget + base) = 1.1 × ({mib(budget)} + "
                f"{mib(base_rss)}) = {mib(rss_limit)} MiB",
                f"max {mib(run['rss']['max_all'])} MiB (window p99 {mib(run['rss']['p99'])})",
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


def target(name_, requirement, measured, value, ok):
    return {"name": name_, "requirement": requirement, "measured": measured, "value": value,
            "result": "MET" if ok else "MISS"}


def error_text(errors):
    return ", ".join(f"{code} {count}" for code, count in sorted(errors.items())) or "0"


def render(info, one, base_phase, preload, baseline, runs, rows):
    budget = info["budget"]
    out = [f"# modeld memory budget benchmark, {info['date']}", "",
           f"- Command: `{info['command']}`", f"- Tree: {info['commit']}",
           f"- Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']:.0f} GiB; the "
           "client processes and modeld share these CPUs.",
           f"- Whole run: {info['elapsed_seconds']:.0f} s. {info['load']}",
           f"- Traffic: {info['clients']}, modeld.Client over gRPC (retries=0), one request "
           f"outstanding per thread; model cnn_(k-1) with k Zipf-distributed over 1..{MODELS} "
           f"(s = {info['zipf']}); {info['warmup']:g} s warm-up, then {info['seconds']:g} s "
           "measured (the requests sent in it). RSS (VmRSS) sampled every 100 ms from modeld's "
           "start to its stop.", "",
           "## Targets", "", "| target | requirement | measured | ratio | result |",
           "|---|---|---|---|---|"]
    out += [f"| {t['name']} | {t['requirement']} | {t['measured']} | {t['value']} "
            f"| **{t['result']}** |" for t in rows]
    out += ["", "## Runs", "",
            "| run | req/s | hit rate | hits p50 / p99 ms | misses p50 / p99 ms "
            "| misses (log) / waited, served / failed (metric) | loads/s | evictions | errors "
            "| RSS max / window p99 MiB | used at end MiB | loaded at end | client CPU "
            "| modeld CPU |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in [baseline, *runs]:
        h, m = run["hits"], run["misses"]
        out.append(
            f"| {run['label']} | {run['req_per_s']:.0f} | {run['hit_rate']:.1%} "
            f"| {h['p50_ms']:.2f} / {h['p99_ms']:.2f} "
            f"| {m['p50_ms']:.1f} / {m['p99_ms']:.1f} ({m['count']}) "
            f"| {m['count']} / {run['waited'] - run['waited_failed']:.0f} / "
            f"{run['waited_failed']:.0f} | {run['loads'] / info['seconds']:.1f} "
            f"| {run['evictions']:.0f} | {error_text(run['errors'])} "
            f"| {mib(run['rss']['max_all'])} / {mib(run['rss']['p99'])} "
            f"| {mib(run['used_end'])} | {run['loaded_at_end']} | {run['client_cores']:.2f} "
            f"| {run['modeld_cores']:.2f} |")
    out += ["", "Flags: " + "; ".join(f"{run['label']}: `{' '.join(run['flags']) or '(none)'}`"
                                     for run in [baseline, *runs]) + ".", ""]
    share = [f"{n / max(1, sum(baseline['per_model'])):.1%}" for n in baseline["per_model"][:6]]
    out += [f"Traffic share of cnn_00..cnn_05 (baseline run): {', '.join(share)}; the top "
            f"{HOLDS} together "
            f"{sum(baseline['per_model'][:HOLDS]) / max(1, sum(baseline['per_model'])):.1%}.", ""]
    for run in runs:
        sizes = sorted(size for _, _, size in run["sizes"])
        if sizes:
            largest = max(run["sizes"], key=lambda entry: entry[2])
            out.append(f"- {run['label']}: modeld measured {len(sizes)} loads (cnn_00's first "
                       f"included) at {mib(sizes[0])} to {mib(sizes[-1])} MiB, median "
                       f"{mib(statistics.median(sizes))} MiB; the largest, {largest[0]}, "
                       f"{mib(largest[2])} MiB.")
        for line in run["error_examples"]:
            out.append(f"- {run['label']}, modeld's log: `{line.strip()[:400]}`")
    out += ["", "## Sizes", "",
            f"- One `cnn` alone (modeld with only it, --preload-models=false): RSS "
            f"{mib(one['rss_before'])} MiB before its first request, {mib(one['rss_after'])} MiB "
            f"after; modeld measured its size as {mib(one['measured'])} MiB.",
            f"- The 20 copies, --preload-models=false: base RSS {mib(base_phase['rss'])} MiB "
            "before any request; one request to each in turn: the 1st model loaded measured "
            f"{mib(base_phase['first_size'])} MiB, the next 19 "
            f"{mib(base_phase['marginal'] * 1024)} KiB each on average (used: "
            f"{', '.join(mib(u) for u in base_phase['used'][:4])}, … "
            f"{mib(base_phase['used'][-1])} MiB); RSS with all 20 loaded "
            f"{mib(base_phase['rss_all_loaded'])} MiB. Load time (first request − second): "
            f"{base_phase['first_load_seconds'] * 1e3:.1f} ms for the 1st, median "
            f"{base_phase['load_seconds'] * 1e3:.1f} ms for the others.",
            f"- Budget: 1st size + {HOLDS - 0.5} × marginal = {mib(budget)} MiB "
            f"(`--model-memory-budget={info['budget_flag']}`); 5 × the one-cnn size would be "
            f"{mib(5 * one['measured'])} MiB, which holds every copy "
            f"({mib(base_phase['used'][-1])} MiB for all 20).",
            f"- Preload check (`--model-memory-budget={info['budget_flag']}`, "
            f"--preload-models=true, no traffic): {preload['preloaded']:.0f} models preloaded, "
            f"used {mib(preload['used'])} MiB of a {mib(preload['budget'])} MiB budget, RSS "
            f"{mib(preload['rss'])} MiB.", ""]
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
    shutil.rmtree(WORK, ignore_errors=True)
    (work / "logs").mkdir(parents=True)
    binary = ROOT / "build" / "bin" / "modeld"
    if not binary.is_file() or not (args.models_dir / "cnn" / "1").is_dir():
        sys.exit("memory_budget_bench: run `make build models` first")
    bench = {"bin": work / "modeld", "logs": work / "logs", "repository": WORK / "repository",
             "one": WORK / "one"}
    shutil.copy2(binary, bench["bin"])  # a rebuild cannot swap it mid-run
    source = args.models_dir / "cnn"
    shutil.copytree(source, bench["one"] / "cnn", ignore=shutil.ignore_patterns("reference"))
    for index in range(MODELS):
        folder = bench["repository"] / name(index)
        shutil.copytree(source, folder, ignore=shutil.ignore_patterns("reference"))
        config = folder / "config.pbtxt"
        config.write_text(re.sub(r'^name:\s*"[^"]*"', f'name: "{name(index)}"',
                                 config.read_text(), count=1, flags=re.M))

    processes.log("one cnn: RSS before and after its first load")
    one = one_cnn(bench)
    processes.log("base: 20 copies, --preload-models=false; each loaded in turn")
    base_phase = base(bench)
    budget = int(base_phase["first_size"] + (HOLDS - 0.5) * base_phase["marginal"])
    budget_flag = str(budget)
    processes.log(f"budget {mib(budget)} MiB; preload check")
    preload = preload_check(bench, budget_flag)
    processes.log("baseline: no budget, all 20 loaded")
    baseline = traffic_phase(args, bench, "baseline (no budget)", [], budgeted=False)
    runs = []
    for residency in args.min_residency.split(","):
        processes.log(f"budget, --model-min-residency={residency}")
        runs.append(traffic_phase(
            args, bench, f"budget, min-residency {residency} s",
            [f"--model-memory-budget={budget_flag}", "--preload-models=false",
             f"--model-min-residency={residency}"], budgeted=True))
    rows = compute_targets(baseline, runs, base_phase["rss"], budget)

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
            "clients": f"{args.processes} client process(es) × {args.threads} threads",
            "load": f"Load average {load_before:.2f} before the run; other processes used "
                    f"{others:.0f} CPU-seconds during it ({share:.1%} of the machine)"
                    + (": **other work skewed these figures**." if share > 0.05 else ".")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(info, one, base_phase, preload, baseline, runs, rows) + "\n")
    (work / "results.json").write_text(json.dumps(
        {"info": info, "one": one, "base": base_phase, "preload": preload,
         "baseline": baseline, "runs": runs, "targets": rows}, indent=1, default=str))
    for t in rows:
        print(f"{t['result']:4}  {t['name']}: {t['measured']}"
              + (f" ({t['value']})" if t["value"] else ""))
    processes.log(f"wrote {args.out} in {elapsed:.0f} s")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
    else:
        main()
