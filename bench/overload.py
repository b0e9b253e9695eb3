#!/usr/bin/env python3
"""make bench, overload: modeld driven open loop at 2× and 5× its saturation by a generator
that keeps its schedule, with the rest of the issue's targets (mlp at 64 clients, cnn at
saturation, concurrency 1) measured beside it in the same run.

Usage (from the repository root, after `make build models`):
    .venv/bin/python bench/overload.py [--overload-seconds 30] [--seconds 3]
        [--warmup-seconds 1] [--generators N] [--out bench/results/<date>-overload.md]

The open-loop phases run on `convnet`, a compute-bound TorchScript CNN this script writes into
build/bench-overload/models/ (again only when the code that writes it changed). modeld-bench
spends about as much CPU on a request as modeld spends answering or refusing it, and here the
two share 2 cores: against mlp (nearly all transport) no generator can offer even 2× its
saturation, and against a model of 0.5 ms an item 5× its saturation took the generators about
half the machine. convnet costs about 2 ms an item, so 5× its saturation is a small share.
The generators run SCHED_FIFO (--generator-priority): at normal priority modeld's busy threads
delayed their sends by tens of ms, and splitting the rate over more processes did not help.

1. in process (modeld-bench-inprocess): convnet at batch 64 (one batch's compute), mlp at
   batch 1, cnn at every batch size;
2. saturation: modeld on convnet, closed loop at 16, 64 and 128 in flight; the best req/s;
3. for 2× then 5× saturation: a fresh modeld on convnet, driven open loop for
   --overload-seconds after --warmup-seconds by --generators modeld-bench processes (rate / N
   each; by default 2, doubled up to --max-generators while one falls behind its schedule),
   RSS sampled every 100 ms; then the echo floor (modeld-bench-echo with convnet's config) at
   the same rate with the same generators for min(10 s, --overload-seconds);
4. mlp at concurrency 1 and 64 against modeld and the echo floor, cnn at 16, 32 and 64
   against modeld (batch sizes from /metrics), on the repository copies of bench/run.py.

Writes --out (markdown: the targets, a table per phase, the generators' lag, RSS) and the raw
data beside it (.json) and one RSS plot per phase (.png); prints the targets, one line each.
Exits 0 when targets miss (a benchmark), non-zero when a process fails. Logs and scratch files
go to build/bench-overload/run/. A default run takes about 2.5 minutes on the 2-core
development machine, and half a minute more for each phase run again with more generators;
`--overload-seconds 3 --seconds 1 --warmup-seconds 0.5` takes about 1 minute.
"""

import argparse
import collections
import concurrent.futures
import datetime
import hashlib
import inspect
import json
import os
import re
import shlex
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import plots, processes, report, repositories, targets  # noqa: E402
from run import Bench, max_batch_size  # noqa: E402  (bench/run.py: binaries copied, load, sweep)

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "bench-overload"
GENERATE_MODELS = ROOT / "examples" / "generate_models.py"

# convnet: FP32 image [3, 32, 32] (CIFAR-sized: 12 KiB a request keeps the transport cheap),
# an 8×8 patch embedding to 4×4×WIDTH, then DEPTH 3×3 convolutions at that width: matrix
# products whose items/s do not fall at large batches (convolutions on larger maps did here,
# their buffers outgrowing the cache), so the batcher's batches of 64 under overload run at
# the model's full speed. WIDTH and DEPTH set the cost: about 2 ms an item at batch 64 on the
# 2-core development machine (91 MB of weights).
CONVNET_INPUT = [3, 32, 32]
CONVNET_PATCH = 8
CONVNET_WIDTH = 512
CONVNET_DEPTH = 10
QUEUE_DELAY_US = 2000
# One batch may wait while one runs: an admitted request then waits at most the batch ahead of
# it and its own, which is the bound the target allows (a queue of two batches makes
# the last admitted wait three).
QUEUE_SIZE = 64
CONVNET_BATCHING = (f"dynamic_batching {{ max_queue_delay_microseconds: {QUEUE_DELAY_US} "
                    f"default_queue_policy {{ max_queue_size: {QUEUE_SIZE} }} }}\n")

SATURATION_CONCURRENCY = "16,64,128"
MULTIPLES = (2, 5)
DEADLINE_SECONDS = 5
MAX_LAG_US = 5000  # the schedule was kept: no arrival sent later than this, none skipped
ECHO_SECONDS = 10
REJECTION_P99_US = targets.REJECTION_P99_LIMIT_US
RSS_GROWTH_MIB = 16
GOODPUT_SHARE = 0.8
MLP_ECHO_SHARE = 0.4
CNN_INPROCESS_SHARE = 0.7
C1_OVERHEAD_US = 60


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--overload-seconds", type=float, default=30.0,
                        help="measured per open-loop phase")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured per closed-loop level")
    parser.add_argument("--warmup-seconds", type=float, default=1.0)
    parser.add_argument("--inprocess-seconds", type=float, default=0.2,
                        help="per batch size, mlp and cnn")
    parser.add_argument("--compute-seconds", type=float, default=3.0,
                        help="convnet at batch 64 in process (one batch's compute)")
    parser.add_argument("--generators", type=int, default=0,
                        help="modeld-bench processes per phase; 0: start with 2, double while "
                             "one falls behind")
    parser.add_argument("--max-generators", type=int, default=8)
    parser.add_argument("--generator-priority", type=int, default=10,
                        help="the open-loop generators run SCHED_FIFO at this priority, so "
                             "modeld's threads cannot delay their schedule; 0: as any process")
    parser.add_argument("--channels", type=int, default=4, help="per generator")
    parser.add_argument("--modeld-flag", action="append", default=[],
                        help="a flag for every modeld this run starts (repeatable), to compare "
                             "settings: e.g. --modeld-flag=--model-thread-nice=0")
    parser.add_argument("--convnet-parameter", action="append", default=[],
                        help="KEY=VALUE: a parameter added to convnet's config for this run, "
                             "e.g. intra_op_thread_count=1")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "examples" / "models")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" /
                        f"{datetime.date.today().isoformat()}-overload.md")
    args = parser.parse_args()
    args.concurrency = SATURATION_CONCURRENCY  # Bench.sweep's levels, set before each sweep
    return args


# --- convnet, written once -------------------------------------------------------------------

def convnet_module(seed):
    import torch
    from torch import nn
    torch.manual_seed(seed)
    layers = [nn.Conv2d(CONVNET_INPUT[0], CONVNET_WIDTH, CONVNET_PATCH, stride=CONVNET_PATCH),
              nn.ReLU()]
    for _ in range(CONVNET_DEPTH):
        layers += [nn.Conv2d(CONVNET_WIDTH, CONVNET_WIDTH, 3, padding=1), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(CONVNET_WIDTH, 10)]
    return nn.Sequential(*layers)


def write_convnet(repository):
    """Writes <repository>/convnet with examples/generate_models.py's helpers (the venv's
    torch) unless the stamp says that this code already wrote it; returns the model folder."""
    digest = hashlib.sha256("\n".join([
        inspect.getsource(convnet_module), inspect.getsource(write_convnet),
        repr((CONVNET_INPUT, CONVNET_PATCH, CONVNET_WIDTH, CONVNET_DEPTH)),
        CONVNET_BATCHING, GENERATE_MODELS.read_text(),
        (ROOT / "scripts" / "requirements-nodeps.txt").read_text()]).encode()).hexdigest()
    folder, stamp = repository / "convnet", repository.parent / "convnet.stamp"
    if (folder / "1" / "model.pt").is_file() and stamp.is_file() and stamp.read_text() == digest:
        return folder
    sys.path.insert(0, str(GENERATE_MODELS.parent))
    import generate_models  # imports torch: only when the model is (re)written

    repository.mkdir(parents=True, exist_ok=True)
    generate_models.write_model(repository, "convnet", generate_models.config(
        "convnet", 64, [("image", "TYPE_FP32", CONVNET_INPUT)], [("logits", "TYPE_FP32", [10])],
        CONVNET_BATCHING), {1: convnet_module(generate_models.SEED)})
    stamp.write_text(digest)
    return folder


def with_parameters(folder, parameters, repository):
    """`folder` itself, or with `parameters` (KEY=VALUE each) a copy of it in `repository`
    whose config adds them."""
    if not parameters:
        return folder
    copy = repository / folder.name
    shutil.copytree(folder, copy)
    lines = []
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        lines.append(f'parameters {{ key: "{key}" value {{ string_value: "{value}" }} }}\n')
    config = copy / "config.pbtxt"
    config.write_text(config.read_text() + "".join(lines))
    return copy


def queue_delay_us(config_text):
    match = re.search(r"max_queue_delay_microseconds:\s*(\d+)", config_text)
    return int(match.group(1)) if match else 0


# --- measuring ---------------------------------------------------------------------------------

def inprocess(bench, model_dir, sizes, seconds):
    name = f"{model_dir.name}-inprocess"
    out = bench.work / f"{name}.json"
    processes.run_checked(
        [str(bench.bin / "modeld-bench-inprocess"), f"--model-dir={model_dir}",
         f"--batch-sizes={sizes}", f"--seconds-per-size={seconds}", f"--json={out}"],
        bench.logs, name, timeout=600)
    return json.loads(out.read_text())


def sweep(bench, name, server_argv, model, concurrency):
    bench.args.concurrency = concurrency
    return bench.sweep(name, server_argv, model)


def real_time(priority):
    """Puts the calling thread under SCHED_FIFO at `priority`: Linux keeps the policy per
    thread, and the processes the thread starts inherit it. False where that is refused."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return True
    except OSError:
        return False


def real_time_allowed(priority):
    """Whether generators can run under SCHED_FIFO here (tried on a thread of its own)."""
    if priority <= 0:
        return False
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(real_time, priority).result()


def open_loop(bench, name, address, model, rate, generators, seconds):
    """`generators` modeld-bench processes started together, each at rate / generators on its
    own channels, under SCHED_FIFO when allowed; returns each one's level."""
    argv = [f"--rate={rate / generators:.3f}", f"--deadline-seconds={DEADLINE_SECONDS}"]
    extra = [f"--warmup-seconds={bench.args.warmup_seconds}", f"--seconds={seconds}"]
    fifo = ({"initializer": real_time, "initargs": (bench.args.generator_priority,)}
            if bench.args.fifo else {})
    with concurrent.futures.ThreadPoolExecutor(generators, **fifo) as pool:
        runs = [pool.submit(bench.load, f"{name}-g{i}", argv, address, model, extra)
                for i in range(generators)]
        return [run.result()["levels"][0] for run in runs]


def merge(levels):
    """The generators' levels as one: counts summed; latency percentiles are the max of the
    generators' (modeld-bench reports no histogram), an upper bound for the p99: at most 1 %
    of each generator's samples, so of all, lie above the largest of their p99s."""
    errors = collections.Counter()
    for entry in levels:
        errors.update(entry["errors"])
    rejected = errors.pop("RESOURCE_EXHAUSTED", 0)
    seconds = levels[0]["seconds"]
    return {
        "offered": sum(e["level"] for e in levels),
        "sent_per_second": sum(e["offered_rate"] for e in levels),
        "admitted": sum(e["latency"]["count"] for e in levels),
        "rejected": rejected, "other_errors": dict(errors),
        "goodput": sum(e["successes"] for e in levels) / seconds,
        "latency": {key: max(e["latency"][key] for e in levels)
                    for key in ("p50_us", "p99_us", "max_us")},
        "rejected_latency": {key: max(e["rejected_latency"][key] for e in levels)
                             for key in ("p50_us", "p99_us", "max_us")},
        "max_send_lag_us": max(e["max_send_lag_us"] for e in levels),
        "client_skipped": sum(e["client_skipped"] for e in levels),
        "client_cpu_cores": sum(e["client_cpu_cores"] for e in levels),
    }


def kept_schedule(merged):
    return merged["max_send_lag_us"] <= MAX_LAG_US and merged["client_skipped"] == 0


def usage(pid=None):
    """(busy CPU seconds of the machine, of this run: this process, its reaped children and
    `pid`, a child still running; now)."""
    machine, ours = processes.cpu_seconds()
    return machine, ours + (processes.process_cpu_seconds(pid) if pid else 0.0), time.monotonic()


def others_cores(start, end):
    """Cores that processes other than this run's used between two usage() samples."""
    return max(0.0, (end[0] - start[0]) - (end[1] - start[1])) / (end[2] - start[2])


def modeld_phase(bench, name, repository, rate, generators):
    """A fresh modeld on `repository`, driven open loop at `rate` while its RSS is sampled."""
    argv = [*bench.modeld_argv(repository), "--http-address=127.0.0.1:0"]
    server, address = processes.start_grpc_server(name, argv, bench.logs)
    url = processes.metrics_url(server)
    sampler = processes.RssSampler(server.pid)
    try:
        before = processes.batch_size_totals(url, "convnet")
        launched = time.monotonic()
        window_start = launched + bench.args.warmup_seconds
        cpu = processes.CpuWindow({"modeld": [server.pid]}, int(window_start * 1e9),
                                  int((window_start + bench.args.overload_seconds) * 1e9))
        started = usage(server.pid)
        levels = open_loop(bench, name, address, "convnet", rate, generators,
                           bench.args.overload_seconds)
        others = others_cores(started, usage(server.pid))
        after = processes.batch_size_totals(url, "convnet")
        modeld_cores = cpu.cores()["modeld"]
    finally:
        samples = sampler.stop()
        server.stop()
    start = window_start - sampler.start_time
    window = (start, start + bench.args.overload_seconds)
    inside = [rss for t, rss in samples if window[0] <= t < window[1]] or [0]
    return {"generators": levels, "merged": merge(levels), "rss": samples, "window": window,
            "rss_mib": {"ready": samples[0][1] / 2**20, "window_start": inside[0] / 2**20,
                        "peak": max(inside) / 2**20, "window_end": inside[-1] / 2**20,
                        "growth": targets.rss_growth_mib(samples, *window)},
            "mean_batch_size": ((after[0] - before[0]) / (after[1] - before[1])
                                if before and after and after[1] > before[1] else None),
            "modeld_cpu_cores": modeld_cores, "other_processes_cores": others}


def echo_phase(bench, name, config, rate, generators):
    server, address = processes.start_grpc_server(
        name, [str(bench.bin / "modeld-bench-echo"), f"--config={config}"], bench.logs)
    try:
        levels = open_loop(bench, name, address, "convnet", rate, generators,
                           min(ECHO_SECONDS, bench.args.overload_seconds))
    finally:
        server.stop()
    return {"generators": levels, "merged": merge(levels)}


def overload(bench, repository, multiple, saturation_rate):
    rate = multiple * saturation_rate
    generators = bench.args.generators or 2
    attempts = []  # (generators, max send lag µs, skipped) of runs that fell behind
    while True:
        processes.log(f"overload {multiple}×: {rate:.0f} req/s over {generators} generator(s)")
        phase = modeld_phase(bench, f"overload-{multiple}x-n{generators}", repository, rate,
                             generators)
        m = phase["merged"]
        processes.log(f"  goodput {m['goodput']:.0f} req/s, admitted p99 "
                      f"{m['latency']['p99_us'] / 1e3:.1f} ms, {m['rejected']} rejected (p99 "
                      f"{m['rejected_latency']['p99_us']:.0f} µs), lag "
                      f"{m['max_send_lag_us'] / 1e3:.1f} ms, skipped {m['client_skipped']}, "
                      f"RSS growth {phase['rss_mib']['growth'] or 0:+.1f} MiB")
        if (kept_schedule(m) or bench.args.generators
                or 2 * generators > bench.args.max_generators):
            break
        attempts.append((generators, m["max_send_lag_us"], m["client_skipped"]))
        generators *= 2
    phase["echo"] = echo_phase(bench, f"echo-{multiple}x", repository / "convnet" /
                               "config.pbtxt", rate, generators)
    e = phase["echo"]["merged"]
    processes.log(f"  echo floor: p99 {e['latency']['p99_us']:.0f} µs, lag "
                  f"{e['max_send_lag_us'] / 1e3:.1f} ms")
    phase.update(multiple=multiple, rate=rate, fell_behind=attempts)
    return phase


# --- targets -----------------------------------------------------------------------------------

def verdict(name, requirement, measured, ok, value=""):
    return {"name": name, "requirement": requirement, "measured": measured, "value": value,
            "result": "pass" if ok else "MISS"}


def phase_targets(phase, saturation_rate, delay_us, batch_us):
    m, echo = phase["merged"], phase["echo"]["merged"]
    label = f"{phase['multiple']}× saturation"
    echo_p99 = echo["latency"]["p99_us"]
    bound = delay_us + 2 * batch_us + echo_p99
    growth = phase["rss_mib"]["growth"]
    rows = [
        verdict(f"{label}: rejections p99", f"≤ {REJECTION_P99_US / 1e3:g} ms",
                f"{m['rejected']} rejected, p99 {m['rejected_latency']['p99_us']:.0f} µs",
                m["rejected"] > 0 and m["rejected_latency"]["p99_us"] <= REJECTION_P99_US,
                f"{m['rejected_latency']['p99_us'] / REJECTION_P99_US:.2f} × limit"),
        verdict(f"{label}: admitted p99",
                f"≤ max_queue_delay + 2 × one batch + echo p99 = {delay_us / 1e3:g} + 2 × "
                f"{batch_us / 1e3:.1f} + {echo_p99 / 1e3:.1f} = {bound / 1e3:.1f} ms",
                f"p99 {m['latency']['p99_us'] / 1e3:.1f} ms of {m['admitted']} admitted",
                m["latency"]["p99_us"] <= bound, f"{m['latency']['p99_us'] / bound:.2f} × bound"),
        verdict(f"{label}: goodput", f"≥ {GOODPUT_SHARE} × saturation ({saturation_rate:.0f} "
                "req/s)", f"{m['goodput']:.0f} req/s",
                m["goodput"] >= GOODPUT_SHARE * saturation_rate,
                f"{m['goodput'] / saturation_rate:.2f}×"),
        verdict(f"{label}: RSS growth", f"≤ {RSS_GROWTH_MIB} MiB",
                "no samples" if growth is None else f"{growth:+.1f} MiB",
                growth is not None and growth <= RSS_GROWTH_MIB,
                "" if growth is None else f"{growth / RSS_GROWTH_MIB:.2f} × limit"),
    ]
    lagged = [(what, run) for what, run in (("modeld", m), ("echo", echo))
              if not kept_schedule(run)]
    if lagged:
        why = "; ".join(f"{what}'s generators: lag {run['max_send_lag_us'] / 1e3:.1f} ms, "
                        f"{run['client_skipped']} skipped" for what, run in lagged)
        for row in rows:
            row.update(measured=f"not measured ({why}); figure: {row['measured']}", result="n/a")
    return rows


def other_targets(results):
    mlp, cnn = results["mlp"], results["cnn"]
    rows = []
    served, echo = (targets.level(mlp[s], 64)["throughput"] for s in ("modeld", "echo"))
    rows.append(verdict("mlp, 64 clients", f"≥ {MLP_ECHO_SHARE} × the echo floor at c=64",
                        f"{served:.0f} vs {echo:.0f} req/s", served >= MLP_ECHO_SHARE * echo,
                        f"{served / echo:.2f}×"))
    sat = targets.saturation(cnn["modeld"])
    reference, how = targets.compute_limit(cnn["inprocess"], sat)
    ratio = sat["items_per_second"] / reference["items_per_second"]
    rows.append(verdict("cnn at saturation",
                        f"≥ {CNN_INPROCESS_SHARE} × in-process at the batcher's batch size",
                        f"{sat['items_per_second']:.0f} items/s (c={sat['level']:.0f}) vs "
                        f"{reference['items_per_second']:.0f} in-process ({how})",
                        ratio >= CNN_INPROCESS_SHARE, f"{ratio:.2f}×"))
    p50 = targets.level(mlp["modeld"], 1)["latency"]["p50_us"]
    echo_p50 = targets.level(mlp["echo"], 1)["latency"]["p50_us"]
    batch1 = targets.inprocess_at(mlp["inprocess"], 1)["p50_us"]
    excess = p50 - (echo_p50 + batch1)
    rows.append(verdict("mlp, concurrency 1",
                        f"p50 − (echo p50 + in-process batch-1 p50) ≤ {C1_OVERHEAD_US} µs",
                        f"{p50:.0f} − ({echo_p50:.0f} + {batch1:.0f}) µs",
                        excess <= C1_OVERHEAD_US, f"{excess:+.0f} µs"))
    return rows


# --- the report --------------------------------------------------------------------------------

def generators_table(phase_part, title):
    rows = [f"| {title} | offered req/s | sent/s | goodput req/s | admitted | p50 / p99 / max ms "
            "| rejected | rejection p50 / p99 µs | other errors | max send lag ms | skipped "
            "| client CPU |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    entries = [(f"generator {i}", e, merge([e])) for i, e in enumerate(phase_part["generators"])]
    entries.append(("**all** (latency: max of the generators')", None, phase_part["merged"]))
    for label, _, m in entries:
        lat, rej = m["latency"], m["rejected_latency"]
        others = ", ".join(f"{k} {v}" for k, v in sorted(m["other_errors"].items())) or "0"
        rows.append(f"| {label} | {m['offered']:.0f} | {m['sent_per_second']:.0f} "
                    f"| {m['goodput']:.0f} | {m['admitted']} | {lat['p50_us'] / 1e3:.1f} / "
                    f"{lat['p99_us'] / 1e3:.1f} / {lat['max_us'] / 1e3:.1f} | {m['rejected']} "
                    f"| {rej['p50_us']:.0f} / {rej['p99_us']:.0f} | {others} "
                    f"| {m['max_send_lag_us'] / 1e3:.2f} | {m['client_skipped']} "
                    f"| {m['client_cpu_cores']:.2f} |")
    return "\n".join(rows)


def phase_section(phase, out):
    rss, m, echo = phase["rss_mib"], phase["merged"], phase["echo"]["merged"]
    batch = phase["mean_batch_size"]
    growth = "n/a" if rss["growth"] is None else f"{rss['growth']:+.1f} MiB"
    generators = len(phase["generators"])
    notes = [f"A fresh modeld; {generators} modeld-bench processes at "
             f"{phase['rate'] / generators:.0f} req/s each, "
             f"{phase['window'][1] - phase['window'][0]:g} s measured after the warm-up; "
             f"deadline {DEADLINE_SECONDS} s a request; latency from each request's scheduled "
             "send time."]
    notes += [f"With {n} generators the schedule was not kept (max send lag {lag / 1e3:.1f} ms, "
              f"{skipped} skipped): run again with {2 * n}."
              for n, lag, skipped in phase["fell_behind"]]
    notes.append(f"Schedule: kept (every generator's lag ≤ {MAX_LAG_US / 1e3:g} ms, nothing "
                 "skipped)." if kept_schedule(m) else
                 "Schedule: **not kept**: the phase's targets are not measured.")
    notes.append(f"modeld used {phase['modeld_cpu_cores']:.2f} cores over the window, "
                 f"processes other than this run's {phase['other_processes_cores']:.2f} over "
                 "the phase; mean batch size "
                 + ("unknown (no /metrics)." if batch is None else f"{batch:.1f}."))
    return "\n".join([
        f"## {phase['multiple']}× saturation: {phase['rate']:.0f} req/s offered", "",
        " ".join(notes), "", generators_table(phase, "modeld"), "",
        f"modeld RSS: {rss['ready']:.0f} MiB when ready, {rss['window_start']:.0f} MiB at the "
        f"window's start, peak {rss['peak']:.0f} MiB, {rss['window_end']:.0f} MiB at its end; "
        f"growth (mean of the window's last quarter − first quarter) {growth}.", "",
        f"![RSS]({rss_plot_path(out, phase['multiple']).name})", "",
        f"Echo floor at the same rate (modeld-bench-echo with convnet's config, same "
        f"generators, {phase['echo']['generators'][0]['seconds']:g} s; schedule "
        f"{'kept' if kept_schedule(echo) else '**not kept**'}):", "",
        generators_table(phase["echo"], "echo"), ""])


def rss_plot_path(out, multiple):
    return out.with_name(f"{out.stem}-{multiple}x-rss.png")


def render(info, results, rows):
    out = [f"# modeld overload benchmark, {info['date']}", "",
           f"- Command: `{info['command']}`",
           f"- Tree: {info['commit']}",
           f"- Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']:.0f} GiB; the "
           "generators and modeld share these CPUs (each table gives the generators' CPU).",
           f"- Whole run: {info['elapsed_seconds']:.0f} s. {info['load']}", "",
           "## Why convnet", "", info["why"], "",
           "## Targets", "",
           "| target | requirement | measured | ratio | result |", "|---|---|---|---|---|"]
    out += [f"| {t['name']} | {t['requirement']} | {t['measured']} | {t['value']} "
            f"| **{t['result']}** |" for t in rows]
    sat = results["saturation"]
    out += ["", "## convnet", "",
            f"Config: `{CONVNET_BATCHING.strip()}`, max_batch_size 64; input "
            f"{sat['run'].get('input', '?')}, {sat['run'].get('payload_bytes', 0)} bytes a "
            "request.", "",
            "### Saturation (closed loop, modeld)", "", report.sweep_table(sat["run"]), "",
            f"Saturation: {sat['rate']:.0f} req/s (the best level).", "",
            "### In process at max_batch_size (one batch's compute)", "",
            report.inprocess_table(results["convnet_inprocess"]), ""]
    out += [phase_section(phase, info["out"]) for phase in results["phases"]]
    for model, setups in (("mlp", ("modeld", "echo")), ("cnn", ("modeld",))):
        out += [f"## {model}", ""]
        for setup in setups:
            out += [f"### {plots.LABELS[setup]}", "", report.sweep_table(results[model][setup]),
                    ""]
        out += ["### In process", "", report.inprocess_table(results[model]["inprocess"]), ""]
    return "\n".join(out)


WHY = """\
The generators and modeld share {nproc} cores, and modeld-bench spends about as much CPU on a
request as modeld spends answering or refusing it. Against `mlp`, whose cost per request is
nearly all transport, a generator on this machine cannot offer 2× its saturation, let alone
5×, on schedule. So the open-loop phases use `convnet`, written by this script with the venv's
torch: FP32 image {input} → logits[10], a patch embedding ({patch}×{patch} patches, {width}
channels on a {side}×{side} map), then {depth} convolutions of 3×3 at that width. It is
compute-bound ({batch_ms:.0f} ms a batch of 64 in process here, {item_ms:.2f} ms an item), so modeld
saturates at {rate:.0f} req/s, and at 5× that ({rate5:.0f} req/s) the generators used
{generator_cores:.2f} cores ({generator_us:.0f} µs of CPU a request) in this run. At that cost
a model of 0.5 ms an item, saturating {lighter:.1f}× higher, would have given them
{lighter_cores:.2f} of the {nproc} cores at 5×, and its goodput would measure the client. The
generators {scheduling}. The mlp and cnn targets keep the example models."""


def why_convnet(args, results, batch_us):
    top = results["phases"][-1]
    generator_cores = top["merged"]["client_cpu_cores"]
    lighter = batch_us / 64 / 500  # how much faster a model of 0.5 ms an item saturates
    return WHY.format(
        nproc=processes.nproc(), input=CONVNET_INPUT, patch=CONVNET_PATCH, width=CONVNET_WIDTH,
        side=CONVNET_INPUT[1] // CONVNET_PATCH, depth=CONVNET_DEPTH, batch_ms=batch_us / 1e3,
        item_ms=batch_us / 1e3 / 64, rate=results["saturation"]["rate"], rate5=top["rate"],
        generator_cores=generator_cores, generator_us=generator_cores / top["rate"] * 1e6,
        lighter=lighter, lighter_cores=lighter * generator_cores,
        scheduling=(f"ran SCHED_FIFO at priority {args.generator_priority}, so that modeld's "
                    "busy threads cannot delay their sends" if args.fifo else
                    "ran at normal priority (SCHED_FIFO was refused or turned off)"))


def main():
    args = parse_args()
    started = time.monotonic()
    load_before = processes.warn_if_loaded("overload")
    run_start = usage()
    work = WORK / "run"
    shutil.rmtree(work, ignore_errors=True)
    bench = Bench(args, work)
    args.fifo = real_time_allowed(args.generator_priority)
    convnet = with_parameters(write_convnet(WORK / "models"), args.convnet_parameter,
                              work / "convnet-repository")
    config = (convnet / "config.pbtxt").read_text()
    repos, _ = repositories.make_copies(args.models_dir, ["mlp", "cnn"], work / "repositories")

    processes.log("in process: convnet at max_batch_size, mlp at 1, cnn at every size")
    results = {"convnet_inprocess": inprocess(bench, convnet, str(max_batch_size(config)),
                                              args.compute_seconds),
               "mlp": {"inprocess": inprocess(bench, repos["batching"] / "mlp", "1",
                                              args.inprocess_seconds)},
               "cnn": {"inprocess": inprocess(bench, repos["batching"] / "cnn", "all",
                                              args.inprocess_seconds)}}
    batch_us = results["convnet_inprocess"]["sizes"][0]["p50_us"]

    processes.log(f"saturation: convnet, closed loop at {SATURATION_CONCURRENCY}")
    saturation_run = sweep(bench, "convnet-saturation", bench.modeld_argv(convnet.parent),
                           "convnet", SATURATION_CONCURRENCY)
    saturation_rate = targets.saturation(saturation_run)["throughput"]
    results["saturation"] = {"run": saturation_run, "rate": saturation_rate}
    results["phases"] = [overload(bench, convnet.parent, multiple, saturation_rate)
                         for multiple in MULTIPLES]

    processes.log("mlp at 1 and 64 clients, modeld and the echo floor; cnn at 16, 32, 64")
    mlp_config = repos["batching"] / "mlp" / "config.pbtxt"
    results["mlp"]["modeld"] = sweep(bench, "mlp-modeld", bench.modeld_argv(repos["batching"]),
                                     "mlp", "1,64")
    results["mlp"]["echo"] = sweep(bench, "mlp-echo", [str(bench.bin / "modeld-bench-echo"),
                                                       f"--config={mlp_config}"], "mlp", "1,64")
    results["cnn"]["modeld"] = sweep(bench, "cnn-modeld", bench.modeld_argv(repos["batching"]),
                                     "cnn", "16,32,64")

    rows = [row for phase in results["phases"] for row in
            phase_targets(phase, saturation_rate, queue_delay_us(config), batch_us)]
    rows += other_targets(results)
    elapsed = time.monotonic() - started
    others = others_cores(run_start, usage()) * elapsed
    share = others / (elapsed * processes.nproc())
    info = {
        "date": datetime.date.today().isoformat(), "out": args.out,
        "command": shlex.join([".venv/bin/python", "bench/overload.py", *sys.argv[1:]]),
        "commit": processes.commit_line(ROOT, "bench/"), "nproc": processes.nproc(),
        "cpu": processes.cpu_model(), "memory_gib": processes.memory_gib(),
        "elapsed_seconds": elapsed,
        "load": f"Load average {load_before:.2f} before the run; other processes used "
                f"{others:.0f} CPU-seconds during it ({share:.1%} of the machine)"
                + (": **other work skewed these figures**." if share > 0.05 else "."),
        "why": why_convnet(args, results, batch_us)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for phase in results["phases"]:
        plots.rss_plot(phase["rss"], phase["window"], rss_plot_path(args.out, phase["multiple"]))
    args.out.write_text(render(info, results, rows) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(
        {"info": {**info, "out": str(args.out)}, "targets": rows, "results": results},
        indent=1))
    for t in rows:
        print(f"{t['result']:4}  {t['name']}: {t['measured']}"
              + (f" ({t['value']})" if t["value"] else ""))
    processes.log(f"wrote {args.out} in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
