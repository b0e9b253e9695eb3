"""The run's PNG plots, drawn with matplotlib's Agg backend (no display needed)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

LABELS = {
    "modeld": "modeld, dynamic batching",
    "direct": "modeld, batching off",
    "echo": "echo floor (gRPC only)",
    "redis": "Redis list + Python worker",
}
STYLES = {"modeld": "o-", "direct": "s-", "echo": "^--", "redis": "d-"}


def throughput_plot(model, runs, inprocess_best, path):
    """Throughput (items/s) against concurrency, one line per setup."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for setup, label in LABELS.items():
        if setup in runs:
            levels = runs[setup]["levels"]
            axes.plot([e["level"] for e in levels], [e["items_per_second"] for e in levels],
                      STYLES[setup], label=label)
    if inprocess_best:
        batch = inprocess_best["batch"]
        axes.axhline(inprocess_best["items_per_second"], color="grey", linestyle=":",
                     label=f"in-process, 1 instance, batch {batch} (compute limit)")
    axes.set_xscale("log", base=2)
    ticks = sorted({e["level"] for run in runs.values() if "levels" in run for e in run["levels"]})
    axes.set_xticks(ticks, [f"{t:g}" for t in ticks])
    axes.set_xlabel("concurrency (requests in flight)")
    axes.set_ylabel("items / s")
    axes.set_title(f"{model}: throughput vs concurrency (single-item requests)")
    axes.grid(True, which="both", alpha=0.3)
    axes.set_ylim(bottom=0)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def latency_plot(model, runs, path):
    """p99 latency against throughput, one line per setup (points in concurrency order)."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for setup, label in LABELS.items():
        if setup in runs:
            levels = runs[setup]["levels"]
            axes.plot([e["items_per_second"] for e in levels],
                      [e["latency"]["p99_us"] / 1000 for e in levels], STYLES[setup], label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("items / s (log scale)")
    axes.set_ylabel("p99 latency (ms)")
    axes.set_title(f"{model}: p99 latency vs throughput (concurrency 1 → 64)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def rss_plot(samples, window, path):
    """modeld's RSS during the overload run."""
    figure, axes = plt.subplots(figsize=(7, 3))
    axes.plot([t for t, _ in samples], [rss / 2**20 for _, rss in samples])
    axes.axvspan(*window, color="grey", alpha=0.15, label="measurement window")
    axes.set_xlabel("seconds")
    axes.set_ylabel("RSS (MiB)")
    axes.set_ylim(bottom=0)
    axes.set_title("modeld RSS during the overload run (sampled every 100 ms)")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
