"""The markdown report of one run: bench/results/<date>.md."""

from harness import repositories, targets
from harness.plots import LABELS


def _errors(entry):
    errors = entry.get("errors") or {}
    return ", ".join(f"{code} {count}" for code, count in sorted(errors.items())) or "0"


def sweep_table(run):
    batches = any("mean_batch_size" in e for e in run["levels"])
    rows = ["| concurrency | req/s | items/s | p50 µs | p90 µs | p99 µs | max µs | errors "
            "| client CPU |" + (" mean batch |" if batches else ""),
            "|---|---|---|---|---|---|---|---|---|" + ("---|" if batches else "")]
    for e in run["levels"]:
        lat = e["latency"]
        batch = f" {e.get('mean_batch_size', 0):.1f} |" if batches else ""
        rows.append(f"| {e['level']:.0f} | {e['throughput']:.0f} | {e['items_per_second']:.0f} "
                    f"| {lat['p50_us']:.0f} | {lat['p90_us']:.0f} | {lat['p99_us']:.0f} "
                    f"| {lat['max_us']:.0f} | {_errors(e)} | {e['client_cpu_cores']:.2f} |"
                    + batch)
    return "\n".join(rows)


def inprocess_table(inprocess, sizes=(1, 2, 4, 8, 16, 32, 64)):
    best = targets.inprocess_best(inprocess)
    rows = ["| batch | items/s | per call p50 µs | p99 µs |", "|---|---|---|---|"]
    for size in inprocess["sizes"]:
        if size["batch"] in sizes or size is best:
            mark = " (best)" if size is best else ""
            rows.append(f"| {size['batch']}{mark} | {size['items_per_second']:.0f} "
                        f"| {size['p50_us']:.0f} | {size['p99_us']:.0f} |")
    return "\n".join(rows)


def targets_table(computed):
    rows = ["| target | requirement | measured | ratio | result |", "|---|---|---|---|---|"]
    for t in computed:
        result = "**pass**" if t["pass"] else "**miss**"
        rows.append(f"| {t['name']} | {t['requirement']} | {t['measured']} | {t['value']} "
                    f"| {result} |")
    return "\n".join(rows)


def overload_section(overload, date):
    entry = overload["run"]["levels"][0]
    others = {k: v for k, v in entry["errors"].items() if k != "RESOURCE_EXHAUSTED"}
    lat, rej = entry["latency"], entry["rejected_latency"]
    rss = [r / 2**20 for _, r in overload["rss"]]
    return "\n".join([
        "## Overload (mlp, open loop at 2 × saturation)", "",
        f"modeld on a copy of the repository whose mlp config sets "
        f"`{repositories.OVERLOAD_BLOCK.strip()}`. Saturation = the best req/s of the mlp "
        f"sweep with batching ({overload['saturation_rate']:.0f}); offered "
        f"{entry['level']:.0f} req/s for {entry['seconds']:.0f} s after "
        f"{overload['warmup_seconds']:.0f} s of warm-up; latency from each request's "
        f"scheduled send time.", "",
        "| offered req/s | sent/s | served req/s | admitted p50 / p90 / p99 / max µs "
        "| rejected (RESOURCE_EXHAUSTED) | rejection p50 / p99 µs | other errors "
        "| client skipped | client CPU |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {entry['level']:.0f} | {entry['offered_rate']:.0f} | {entry['throughput']:.0f} "
        f"| {lat['p50_us']:.0f} / {lat['p90_us']:.0f} / {lat['p99_us']:.0f} / "
        f"{lat['max_us']:.0f} | {entry['errors'].get('RESOURCE_EXHAUSTED', 0)} "
        f"| {rej['p50_us']:.0f} / {rej['p99_us']:.0f} "
        f"| {_errors({'errors': others})} "
        f"| {entry['client_skipped']} | {entry['client_cpu_cores']:.2f} |", "",
        f"modeld RSS: start {rss[0]:.0f} MiB, peak {max(rss):.0f} MiB, end {rss[-1]:.0f} MiB "
        f"({len(rss)} samples).", "",
        f"![RSS]({date}-overload-rss.png)", ""])


def render(date, info, results, computed):
    out = [f"# modeld benchmark, {date}", "",
           f"- Command: `{info['command']}`",
           f"- Tree: {info['commit']}; {info['batcher']}",
           f"- Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']:.0f} GiB; "
           "**the load generator, the servers and the baselines all share these CPUs**, so "
           "every figure includes the client's own CPU use (the `client CPU` column, in "
           "cores) and the ratios compare set-ups under the same handicap.",
           f"- Per level: {info['warmup_seconds']} s warm-up, then {info['seconds']} s measured; "
           f"modeld-bench on {info['channels']} gRPC channels, single-item requests "
           "(batch 1), random inputs built from ModelMetadata.",
           f"- Batch sizes the batcher formed: {info['batch_source']}",
           f"- Whole run: {info['elapsed_seconds']:.0f} s. Load average: {info['load']}.", ""]
    out += [f"- Note: {note}" for note in info["notes"]]
    out += ["", "## Targets", "", targets_table(computed), ""]
    for model in info["models"]:
        runs = results[model]
        out += [f"## {model}", "", f"Input: {runs['modeld'].get('input', '?')}; "
                f"{runs['modeld'].get('payload_bytes', 0)} bytes per request.", "",
                f"![throughput]({date}-{model}-throughput.png)", "",
                f"![p99]({date}-{model}-p99.png)", ""]
        for setup, label in LABELS.items():
            if setup in runs:
                out += [f"### {label}", "", sweep_table(runs[setup]), ""]
                if setup == "redis":
                    mixed = ", ".join(f"c={e['level']}: {e['mixed_up']}"
                                      for e in runs["redis"]["levels"])
                    out += [f"Answers popped by a client that did not send them: {mixed}.", ""]
        inproc = runs["inprocess"]
        out += [f"### In-process (TorchBackend, {inproc['instances']} instance, "
                f"{inproc['intra_op_threads']} intra-op thread(s), as modeld sets them)", "",
                inprocess_table(inproc), ""]
    if "overload" in results:
        out.append(overload_section(results["overload"], date))
    out += ["## How the set-ups differ", "", info["setups"], ""]
    return "\n".join(out)
