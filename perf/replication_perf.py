"""Replicated producer throughput: RF=3 ``acks=all`` against RF=1 ``acks=1``, in one run.

Run from the repository root with the project's virtualenv::

    python perf/replication_perf.py [--num-records 2000000] [--record-size 100]
        [--rounds 3] [--order alternate|rf1-first|rf3-first] [--partitions 1]
        [--broker-setting NAME=VALUE] [--dir DIR] [--keep-dir] [--json]

Issue 4's benchmark. The tool starts a real ZooKeeper and three brokers on
loopback (``perf/cluster_launcher.py``: Debian's ZooKeeper, brokers 0..2 with
``logserver/config.py``'s defaults, everything under one temp dir), creates
two topics with ``--partitions`` partitions each:

* ``rf1``: replication factor 1, written with ``acks=1``;
* ``rf3``: replication factor 3 and ``min.insync.replicas=2``, written with
  ``acks=all`` (each batch is acknowledged once the whole ISR has it),

waits until every partition has a leader and a full ISR, then runs the very
same producer workload against each -- ``perf/producer_perf.py``'s
``produce``: one producer in this process, ``--num-records`` random values of
``--record-size`` bytes, no key, clock from the first send to the last
acknowledgement, ``flush()`` included, the other producer flags as there.

A round is one run against each topic; there are ``--rounds`` of them, rf1
first in odd rounds and rf3 first in even ones (``--order alternate``), so
that a neighbour's load or a warming page cache does not always favour the
same topic. Printed: each run's records/s, MB/s, latency and CPU, each
round's ratio rf3/rf1, and the medians: rf1's and rf3's records/s and MB/s,
and the median of the rounds' ratios, which issue 4's bar wants at least 0.40.

On a 2-core machine the RF=1 run has the producer and one broker busy; the
RF=3 run adds two followers fetching from the leader, so four busy processes
share two cores. The CPU time and run-queue wait of this process and of each
broker over each run are printed (``/proc/PID/task/*/schedstat``): where the
ratio goes.

Every process started is stopped by its PID at the end, on ^C, on SIGTERM
and on an error. Bars are printed, never enforced; the exit status is 1 only
when a record failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from typing import Any

from broker_launcher import CpuMeter, format_latency, progress
from cluster_launcher import (
    LaunchedCluster,
    add_cluster_arguments,
    print_cluster_environment,
    run_on_cluster,
    wait_for_topic,
)
from producer_perf import (
    add_producer_arguments,
    check_producer_arguments,
    config_of,
    produce,
)

from client.admin import Admin

TOOL = "replication_perf"
BAR_RATIO_MIN = 0.40
TOPICS = {
    # name: (replication factor, acks, topic config)
    "rf1": (1, 1, {}),
    "rf3": (3, "all", {"min.insync.replicas": "2"}),
}
READY_TIMEOUT_S = 60.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--num-records",
        type=int,
        default=2_000_000,
        help="records per topic and round (2000000)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of one rf1 and one rf3 run each (3)"
    )
    parser.add_argument(
        "--order",
        choices=("alternate", "rf1-first", "rf3-first"),
        default="alternate",
        help="which topic a round writes first; alternate: rf1 in odd rounds, rf3 in even "
        "ones (default)",
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=300.0,
        help="seconds each of the two runs may take before the tool gives up (300)",
    )
    add_producer_arguments(parser, with_acks=False)
    add_cluster_arguments(parser)
    args = parser.parse_args(argv)
    args.topic = "rf1"  # set per run; check_producer_arguments and config_of read it
    args.acks = 1
    check_producer_arguments(parser, args)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def describe_partitions(description: Any) -> list[dict[str, Any]]:
    return [
        {"partition": p.partition, "leader": p.leader, "replicas": p.replicas, "isr": p.isr}
        for p in description.partitions
    ]


async def produce_to(
    admin: Admin,
    cluster: LaunchedCluster,
    args: argparse.Namespace,
    name: str,
    pids: dict[str, int | None],
) -> dict[str, Any]:
    """One run: ``args.num_records`` records to topic ``name`` with its acks."""
    factor, acks, config = TOPICS[name]
    before = (await admin.describe_topics([name]))[name]
    settings = argparse.Namespace(**{**vars(args), "topic": name, "acks": acks})
    progress(TOOL, f"{name}: replication factor {factor}, acks={acks}")
    result = await asyncio.wait_for(
        produce(cluster.bootstrap, settings, args.num_records, tool=TOOL, meter=CpuMeter(pids)),
        args.run_timeout,
    )
    after = (await admin.describe_topics([name]))[name]
    result.update(
        topic=name,
        replication_factor=factor,
        acks=acks,
        topic_config=config,
        partitions_before=describe_partitions(before),
        partitions_after=describe_partitions(after),
    )
    return result


def order_of(args: argparse.Namespace, round_index: int) -> list[str]:
    first = {"rf1-first": "rf1", "rf3-first": "rf3"}.get(args.order)
    if first is None:  # alternate: rf1 first in the first round, rf3 first in the second, ...
        first = "rf1" if round_index % 2 == 0 else "rf3"
    return [first, "rf3" if first == "rf1" else "rf1"]


async def run(cluster: LaunchedCluster, args: argparse.Namespace) -> list[dict[str, Any]]:
    async with Admin(cluster.bootstrap, client_id=TOOL) as admin:
        for name, (factor, _, config) in TOPICS.items():
            await admin.create_topic(name, args.partitions, factor, config)
        for name in TOPICS:
            await wait_for_topic(admin, name, READY_TIMEOUT_S)
        pids = {"tool": os.getpid()} | {f"broker {i}": b.pid for i, b in enumerate(cluster.brokers)}
        rounds = []
        for index in range(args.rounds):
            order = order_of(args, index)
            runs = {name: await produce_to(admin, cluster, args, name, pids) for name in order}
            ratio = runs["rf3"]["records_per_s"] / runs["rf1"]["records_per_s"]
            progress(TOOL, f"round {index + 1}: rf3/rf1 = {ratio:.3f}")
            rounds.append({"round": index + 1, "order": order, "runs": runs, "ratio": ratio})
    return rounds


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    ratios = [r["ratio"] for r in rounds]
    ratio = statistics.median(ratios)

    def median_of(name: str, key: str) -> float:
        return statistics.median(r["runs"][name][key] for r in rounds)

    return {
        "ratios": ratios,
        "ratio_median": ratio,
        "rf1_records_per_s_median": median_of("rf1", "records_per_s"),
        "rf3_records_per_s_median": median_of("rf3", "records_per_s"),
        "rf1_mb_s_median": median_of("rf1", "mb_s"),
        "rf3_mb_s_median": median_of("rf3", "mb_s"),
        "bar_ratio_min": BAR_RATIO_MIN,
        "met": ratio >= BAR_RATIO_MIN,
    }


def print_run(result: dict[str, Any]) -> None:
    leaders = ", ".join(
        f"p{p['partition']} leader {p['leader']} isr {list(p['isr'])}"
        for p in result["partitions_after"]
    )
    extra = ", min.insync.replicas=2" if result["topic_config"] else ""
    print(
        f"  {result['topic']} (replication factor {result['replication_factor']}, "
        f"acks={result['acks']}{extra}; after the run: {leaders})"
    )
    print(
        f"    {result['records']} records sent, {result['records_per_s']:.1f} records/sec "
        f"({result['mb_s']:.2f} MB/sec, {result['mib_s']:.2f} MiB/sec), "
        f"{result['elapsed_s']:.2f} s"
    )
    print(f"    latency ({result['latency']['method']}): {format_latency(result['latency'])}")
    cpu = ", ".join(
        f"{who} {used['cpu_s']:.2f} s (+{used['runqueue_wait_s']:.2f} s waiting)"
        for who, used in result["cpu"].items()
    )
    if cpu:
        print(f"    cpu: {cpu}")
    if result["errors"]:
        print(f"    {result['errors']} failed records, first: {result['first_error']}")


def print_table(out: dict[str, Any]) -> None:
    print_cluster_environment(out["env"])
    config = out["config"]
    print()
    print(
        f"Producer: {config['num_records']} records of {config['record_size']} B per topic and "
        f"round, {config['partitions_if_created']} partition(s), "
        f"compression={config['compression']}, batch.size={config['batch_size']}, "
        f"linger.ms={config['linger_ms']}, yield every {config['yield_every']} sends"
    )
    for r in out["rounds"]:
        print(f"round {r['round']} ({', '.join(r['order'])}): rf3/rf1 = {r['ratio']:.3f}")
        for name in r["order"]:
            print_run(r["runs"][name])
    s = out["summary"]
    print()
    print(
        f"rf1 (RF 1, acks=1):   {s['rf1_records_per_s_median']:.0f} records/s, "
        f"{s['rf1_mb_s_median']:.2f} MB/s (median of {len(s['ratios'])} round(s))"
    )
    print(
        f"rf3 (RF 3, acks=all): {s['rf3_records_per_s_median']:.0f} records/s, "
        f"{s['rf3_mb_s_median']:.2f} MB/s"
    )
    ratios = ", ".join(f"{x:.3f}" for x in s["ratios"])
    print(
        f"rf3/rf1 = {s['ratio_median']:.3f} (median of the rounds' ratios {ratios}); "
        f"bar >= {s['bar_ratio_min']:.2f}: {'met' if s['met'] else 'NOT MET'}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ran = run_on_cluster(TOOL, args, lambda cluster: run(cluster, args))
    if ran is None:
        return 130
    rounds, env = ran
    config = config_of(args)
    for key in ("topic", "acks"):
        config.pop(key, None)
    config["order"] = args.order
    config["rounds"] = args.rounds
    out = {"rounds": rounds, "summary": summary(rounds), "config": config, "env": env}
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        print_table(out)
    return 1 if any(run["errors"] for r in rounds for run in r["runs"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
