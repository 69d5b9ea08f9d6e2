"""The Markdown of ``perf/compare.py``: the comparison table with ratios, resources, the bar."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

TITLES = {"logserver": "logserver", "redis": "Redis Streams", "nats": "NATS JetStream"}
THROUGHPUT_ROWS = (
    ("produce_100", "producer, 100-byte values"),
    ("produce_1000", "producer, 1000-byte values"),
    ("consume_100", "consumer from the start, 100-byte values"),
    ("consume_1000", "consumer from the start, 1000-byte values"),
)
LATENCY_ROWS = (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9"))
DURABILITY = (
    "Durability: Redis runs with `appendonly yes`, `appendfsync everysec`, no RDB "
    "snapshots (and no automatic AOF rewrite, so the data-dir growth is the producer's); "
    "logserver with `log.flush.interval.ms=1000` (`--log-flush-interval-ms 1000`), "
    "so both fsync at least once a second and acknowledge writes that are in the OS page "
    "cache but not yet on disk. NATS JetStream (file storage) acknowledges before fsync "
    "too, and fsyncs less often: the setting for it, `sync_interval` (default 2 minutes), "
    "came in NATS 2.10, and 2.9 rejects it, so NATS runs with its default here."
)


def evaluate_bar(results: dict[str, Any]) -> dict[str, Any]:
    """logserver's records/s ahead of every other system, for every throughput row."""
    if "logserver" not in results:
        return {"checked": [], "met": None}
    checked = []
    for key, label in THROUGHPUT_ROWS:
        ours = results["logserver"][key]["records_per_s"]
        for other in results:
            if other == "logserver":
                continue
            theirs = results[other][key]["records_per_s"]
            checked.append(
                {
                    "workload": label,
                    "against": other,
                    "ratio": ours / theirs,
                    "ahead": ours > theirs,
                }
            )
    met = bool(checked) and all(c["ahead"] for c in checked)
    complete = {"redis", "nats"} <= results.keys()
    return {"checked": checked, "met": met if complete else None}


def _ratio(ours: float, theirs: float) -> str:
    if not theirs or math.isnan(theirs) or math.isnan(ours):
        return "n/a"
    return f"{ours / theirs:.2f}"


def _size(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def table(results: dict[str, Any]) -> list[str]:
    systems = list(results)
    others = [s for s in systems if s != "logserver"] if "logserver" in systems else []
    header = [
        "workload",
        *(TITLES[s] for s in systems),
        *(f"logserver ÷ {TITLES[o]}" for o in others),
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, label in THROUGHPUT_ROWS:
        cells = [label]
        for s in systems:
            r = results[s][key]
            cells.append(f"{r['records_per_s']:,.0f} records/s ({r['mb_s']:.1f} MB/s)")
        for o in others:
            ratio = _ratio(
                results["logserver"][key]["records_per_s"], results[o][key]["records_per_s"]
            )
            cells.append(f"**{ratio}**")
        lines.append("| " + " | ".join(cells) + " |")
    first = results[systems[0]]["latency"]
    for key, label in LATENCY_ROWS:
        cells = [f"end to end at {first['rate']:,.0f}/s, {label} (lower is better)"]
        cells += [f"{results[s]['latency'][key]:.2f} ms" for s in systems]
        cells += [
            _ratio(results["logserver"]["latency"][key], results[o]["latency"][key]) for o in others
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def resources(results: dict[str, Any]) -> list[str]:
    systems = list(results)
    header = ["workload", *(TITLES[s] for s in systems)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = [*THROUGHPUT_ROWS, ("latency", "end to end latency run")]
    for key, label in rows:
        cells = [label]
        for s in systems:
            figures = results[s][key]
            cpu = figures["cpu"]
            cell = f"{cpu.get('server', math.nan):.2f} s / {cpu.get('client', math.nan):.2f} s"
            waited = figures.get("runqueue_wait", {}).get("client")
            if waited is not None:
                cell += f" (client waited {waited:.2f} s for a CPU)"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    for size in ("100", "1000"):
        cells = [f"data dir growth, {size}-byte producer run"]
        cells += [_size(results[s][f"produce_{size}"]["data_dir_bytes"]) for s in systems]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_markdown(report: dict[str, Any], path: Path) -> None:
    results, config = report["results"], report["config"]
    machine, versions = report["machine"], report["versions"]
    source = versions["logserver"]
    modified = " (client/ or logserver/ modified)" if source["client_or_broker_modified"] else ""
    load = " ".join(f"{x:.2f}" for x in machine["loadavg_start"])
    load_end = " ".join(f"{x:.2f}" for x in machine["loadavg_end"])
    bar = report["bar"]
    verdict = {True: "**met**", False: "**not met**", None: "not evaluated (a system was left out)"}
    out = [
        "# logserver against Redis Streams and NATS JetStream",
        "",
        f"Written by `perf/compare.py` on {report['date']} in {report['runtime_s']:.0f} s: "
        f"`{report['command']}`.",
        "",
        f"- **Workloads:** {config['records_100']:,} records of 100 bytes and "
        f"{config['records_1000']:,} of 1000 bytes produced, then read from the start; "
        f"end-to-end latency at {config['latency_rate']:,.0f} records/s for "
        f"{config['latency_seconds']:g} s. Throughput figures are the median of "
        f"{config['rounds']} rounds in which the systems take turns workload by workload "
        "(order rotated each round), so outside load falls on all alike. The three servers "
        f"run side by side on loopback, the idle ones idle; one client process on "
        f"{versions['event_loop']}.",
        f"- **Machine:** {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['platform']}; "
        f"load average {load} at the start, {load_end} at the end.",
        f"- **Versions:** {versions['redis-server']}; {versions['nats-server']}; "
        f"Python {versions['python']}, redis-py {versions['redis']}, hiredis "
        f"{versions['hiredis']}, nats-py {versions['nats-py']}, uvloop {versions['uvloop']}; "
        f"logserver at commit `{source['commit']}`{modified}.",
        f"- **{DURABILITY}**",
        "",
        "Throughput: records/s (MB/s of values, MB = 10^6 bytes). Ratios are logserver ÷ "
        "the other system: above 1 logserver is faster; for latency, below 1 it is lower.",
        "",
        *table(results),
        "",
        "Server CPU seconds / client CPU seconds over each workload (the median round; "
        "the client's wait for a CPU shows contention on the machine), and the bytes the "
        "producer run added to the server's data dir:",
        "",
        *resources(results),
        "",
        f"Bar (issue 6), logserver's producer and consumer throughput ahead of both others "
        f"for both value sizes in this run: {verdict[bar['met']]}.",
    ]
    behind = [c for c in bar["checked"] if not c["ahead"]]
    for c in behind:
        out.append(f"- behind {TITLES[c['against']]}: {c['workload']}, ratio {c['ratio']:.2f}")
    out += ["", "How each system is driven:", ""]
    for name, module in (
        ("logserver", "compare_logserver"),
        ("redis", "compare_redis"),
        ("nats", "compare_nats"),
    ):
        if name in results:
            out.append(
                f"- {TITLES[name]} (`perf/{module}.py`): `{results[name]['server']['command']}`"
            )
    path.write_text("\n".join(out) + "\n")
