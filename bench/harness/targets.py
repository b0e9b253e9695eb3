"""The issue's targets, computed from one run's results (ratios measured side by side).

`results[model][setup]` holds modeld-bench's JSON ("levels") for the setups "modeld" (dynamic
batching on), "direct" (batching off), "echo" (transport floor) and "redis" (the original
Redis-list design); `results[model]["inprocess"]` holds modeld-bench-inprocess's JSON;
`results["overload"]` the open-loop overload run with its RSS samples.
"""

from harness.repositories import OVERLOAD_QUEUE_DELAY_US

# "The excess rejected at once": a rejection's p99 must stay under this. A rejection that had
# waited for even one batch of mlp (about 0.9 ms at batch 64 here) would exceed it.
REJECTION_P99_LIMIT_US = 1000
# "Memory flat": the mean RSS of the window's last quarter minus that of its first quarter.
RSS_GROWTH_LIMIT_MIB = 8


def level(run, concurrency):
    for entry in run["levels"]:
        if entry["level"] == concurrency:
            return entry
    raise KeyError(f"no level {concurrency} in {run.get('target')}")


def saturation(run):
    """The level with the most items/s."""
    return max(run["levels"], key=lambda entry: entry["items_per_second"])


def inprocess_best(inprocess):
    return max(inprocess["sizes"], key=lambda size: size["items_per_second"])


def inprocess_at(inprocess, batch):
    for size in inprocess["sizes"]:
        if size["batch"] == batch:
            return size
    raise KeyError(f"in-process run has no batch size {batch}")


def compute_limit(inprocess, level_entry):
    """The in-process size to compare a server level with: the mean batch size modeld reported
    for that level (rounded) when it did, else the best size of all."""
    mean = level_entry.get("mean_batch_size")
    if mean:
        batch = max(1, round(mean))
        return inprocess_at(inprocess, batch), f"batch {batch}, modeld's mean {mean:.1f}"
    best = inprocess_best(inprocess)
    return best, f"best size, batch {best['batch']}; modeld reported no batch sizes"


def _ratio(name, requirement, numerator, denominator, threshold, detail):
    ratio = numerator / denominator if denominator else float("inf")
    return {"name": name, "requirement": requirement, "measured": detail,
            "value": f"{ratio:.2f}×", "pass": ratio >= threshold}


def rss_growth_mib(samples, start, end):
    """Mean RSS of the last quarter of [start, end) minus the first quarter's, in MiB."""
    window = [(t, rss) for t, rss in samples if start <= t < end]
    if len(window) < 8:
        return None
    quarter = len(window) // 4
    first = sum(rss for _, rss in window[:quarter]) / quarter
    last = sum(rss for _, rss in window[-quarter:]) / quarter
    return (last - first) / 2**20


def compute(results):
    targets = []
    mlp = results["mlp"]
    c64 = {setup: level(mlp[setup], 64) for setup in ("modeld", "echo", "direct", "redis")}
    served = c64["modeld"]["throughput"]
    for setup, threshold, what in (("echo", 0.8, "the echo floor (same payload)"),
                                   ("direct", 3, "the same server with batching off"),
                                   ("redis", 5, "the original Redis-list design")):
        targets.append(_ratio(
            f"mlp c=64 vs {setup}", f"≥ {threshold} × {what}", served,
            c64[setup]["throughput"], threshold,
            f"{served:.0f} vs {c64[setup]['throughput']:.0f} req/s"))

    p50 = level(mlp["modeld"], 1)["latency"]["p50_us"]
    p50_direct = level(mlp["direct"], 1)["latency"]["p50_us"]
    targets.append({"name": "mlp c=1 p50", "requirement": "within 30 µs of batching off",
                    "measured": f"{p50:.0f} vs {p50_direct:.0f} µs",
                    "value": f"{p50 - p50_direct:+.0f} µs", "pass": p50 - p50_direct <= 30})

    cnn = results["cnn"]
    cnn_sat = saturation(cnn["modeld"])
    reference, how = compute_limit(cnn["inprocess"], cnn_sat)
    targets.append(_ratio(
        "cnn at saturation", "≥ 0.9 × in-process at the batcher's batch size",
        cnn_sat["items_per_second"], reference["items_per_second"], 0.9,
        f"{cnn_sat['items_per_second']:.0f} items/s (c={cnn_sat['level']:.0f}) vs "
        f"{reference['items_per_second']:.0f} in-process ({how})"))

    overload = results.get("overload")
    if overload:
        targets.extend(_overload_targets(overload, results["mlp"]["inprocess"]))
    return targets


def _overload_targets(overload, mlp_inprocess):
    entry = overload["run"]["levels"][0]
    batch_us = inprocess_at(mlp_inprocess, overload["max_batch_size"])["p50_us"]
    bound = OVERLOAD_QUEUE_DELAY_US + 2 * batch_us
    p99 = entry["latency"]["p99_us"]
    targets = [{"name": "overload p99 (admitted)",
                "requirement": f"≤ max_queue_delay + 2 × one batch = "
                               f"{OVERLOAD_QUEUE_DELAY_US} + 2 × {batch_us:.0f} = {bound:.0f} µs",
                "measured": f"p99 {p99:.0f} µs at {entry['offered_rate']:.0f} req/s offered "
                            f"(2 × {overload['saturation_rate']:.0f})",
                "value": f"{p99 / bound:.2f} × bound", "pass": p99 <= bound}]

    errors = dict(entry["errors"])
    rejected = errors.pop("RESOURCE_EXHAUSTED", 0)
    others = sum(errors.values())
    rejected_p99 = entry["rejected_latency"]["p99_us"]
    share = rejected / entry["sent"] if entry["sent"] else 0
    targets.append({
        "name": "overload excess rejected",
        "requirement": f"RESOURCE_EXHAUSTED, at once (p99 ≤ {REJECTION_P99_LIMIT_US} µs), "
                       "no other errors",
        "measured": f"{rejected} of {entry['sent']} rejected ({share:.0%}), rejection p99 "
                    f"{rejected_p99:.0f} µs, other errors {others}",
        "value": f"{share:.0%} rejected",
        "pass": rejected > 0 and others == 0 and rejected_p99 <= REJECTION_P99_LIMIT_US})

    growth = rss_growth_mib(overload["rss"], overload["window_start"], overload["window_end"])
    peak_mib = max(rss for _, rss in overload["rss"]) / 2**20
    targets.append({
        "name": "overload memory",
        "requirement": f"flat: RSS growth over the window ≤ {RSS_GROWTH_LIMIT_MIB} MiB",
        "measured": "no samples" if growth is None else
                    f"{growth:+.1f} MiB (peak {peak_mib:.0f} MiB)",
        "value": "n/a" if growth is None else f"{growth:+.1f} MiB",
        "pass": growth is not None and growth <= RSS_GROWTH_LIMIT_MIB})
    return targets
