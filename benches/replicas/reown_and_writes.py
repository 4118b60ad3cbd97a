#!/usr/bin/env python3
"""Two replica-set figures with a real etcd and three `switchyard serve --etcd` replicas:

1. Re-owning: the replica set shares TARGETS TCP-checked endpoints (each a distinct 127.x.y.z
   address on one port, accepted by one sink that notes when each address was last probed);
   one replica is killed (SIGKILL, no goodbye) and the script reports how long after the kill
   the last of the targets it probed is probed again by a survivor (at most the lease's TTL
   for etcd to drop it, plus one check interval), and how many targets waited longer than one
   interval (the dead replica's share).
2. etcd writes at scale: with the two survivors sharing, FLAPPING of the endpoints (a
   consecutive run of addresses) are made to fail and recover every FLAP seconds by an
   iptables rule that resets connections to them; the replicas' etcd write counters
   (switchyard_cluster_health_writes_total) over WINDOW seconds give writes per second,
   against the probes per second the same replicas send.

Needs root (iptables) and etcd (Debian's etcd-server). Everything runs on loopback, and the
iptables rule and every process are removed at the end.

    python3 benches/replicas/reown_and_writes.py [--targets 100000] [--flapping 1000]
        [--interval 30] [--lease 10] [--flap 60] [--window 120]
        [--binary target/debug/switchyard]
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_rate import (  # noqa: E402
    address, config, free_port, get, probes, serve, sink, start_etcd, wait,
)

LAST_PROBE = {}


def note_probe(address_probed):
    LAST_PROBE.setdefault(address_probed, []).append(time.time())


def writes(admin):
    text = get(f"{admin}/metrics")
    match = re.search(r"^switchyard_cluster_health_writes_total (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def flapping_rule(port, first, count, add):
    """iptables rule resetting TCP connections to the flapping block of targets."""
    addresses = f"{address(first)}-{address(first + count - 1)}"
    action = "-I" if add else "-D"
    subprocess.run(
        ["iptables", action, "OUTPUT", "-p", "tcp", "-m", "iprange", "--dst-range", addresses,
         "--dport", str(port), "-j", "REJECT", "--reject-with", "tcp-reset"],
        check=add, stderr=subprocess.DEVNULL,
    )
    return addresses


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=100000)
    parser.add_argument("--flapping", type=int, default=1000)
    parser.add_argument("--interval", type=int, default=30)
    parser.add_argument("--lease", type=int, default=10)
    parser.add_argument("--flap", type=float, default=60)
    parser.add_argument("--window", type=float, default=120)
    parser.add_argument("--binary", default="target/debug/switchyard")
    args = parser.parse_args()
    etcd_binary = shutil.which("etcd") or sys.exit("needs etcd: apt-get install etcd-server")
    shutil.which("iptables") or sys.exit("needs iptables: apt-get install iptables")
    # The flapping block: consecutive targets, so one address range covers them.
    block, first = args.flapping, args.targets // 2
    work = tempfile.mkdtemp(prefix="reown-")
    children, port, rule = [], free_port(), None
    try:
        sink(port, note_probe)
        path = os.path.join(work, "fleet.yaml")
        with open(path, "w") as f:
            f.write(config(args.targets, args.interval, port))
        client = start_etcd(etcd_binary, work, children)
        replicas = {}
        for name in ["r1", "r2", "r3"]:
            child, admin = serve(args.binary, path, work, name,
                                 ["--etcd", client, "--replica-name", name,
                                  "--etcd-lease", str(args.lease)])
            children.append(child)
            replicas[name] = (child, admin)

        def sharing_among(names):
            def check():
                for name in names:
                    cluster = json.loads(get(f"{replicas[name][1]}/cluster"))
                    owned = sum(m["targets_owned"] for m in cluster["members"])
                    members = sorted(m["name"] for m in cluster["members"])
                    if not (cluster["sharing"] and members == sorted(names)
                            and owned == args.targets):
                        return False
                return True
            return check

        wait("three replicas sharing", sharing_among(["r1", "r2", "r3"]), patience=600)
        # Two rounds under the settled ownership, so every target has a recent probe.
        time.sleep(2 * args.interval)
        killed_at = time.time()
        replicas["r2"][0].send_signal(signal.SIGKILL)
        replicas["r2"][0].wait()
        wait("the survivors to share", sharing_among(["r1", "r3"]), patience=600)
        time.sleep(args.lease + 2 * args.interval)
        delays = []
        for i in range(args.targets):
            after = [t for t in LAST_PROBE.get(address(i), []) if t > killed_at]
            delays.append(after[0] - killed_at if after else float("inf"))
        waited = sorted(d for d in delays if d > args.interval)
        print(f"{args.targets} targets, TCP check every {args.interval} s, lease {args.lease} s, "
              f"binary {args.binary}")
        print(f"  r2 killed: {len(waited)} targets waited more than one interval "
              f"(r2's share: about {args.targets // 3}); the last was probed again "
              f"{max(delays):.1f} s after the kill, the median of those "
              f"{waited[len(waited) // 2] if waited else 0:.1f} s "
              f"(bound: lease + interval = {args.lease + args.interval} s)")

        survivors = [replicas["r1"], replicas["r3"]]
        before = [(time.time(), writes(a), probes(a)) for _, a in survivors]
        flipped, next_flip, failing = 0, time.time(), False
        end = time.time() + args.window
        while time.time() < end:
            if time.time() >= next_flip:
                failing = not failing
                network = flapping_rule(port, first, block, failing)
                rule = network if failing else None
                flipped += 1
                next_flip += args.flap / 2
            time.sleep(0.2)
        after = [(time.time(), writes(a), probes(a)) for _, a in survivors]
        seconds = sum(t1 - t0 for (t0, _, _), (t1, _, _) in zip(before, after)) / 2
        written = sum(w1 - w0 for (_, w0, _), (_, w1, _) in zip(before, after))
        probed = sum(p1 - p0 for (_, _, p0), (_, _, p1) in zip(before, after))
        print(f"  {block} of {args.targets} endpoints ({network}) failing and recovering every "
              f"{args.flap:.0f} s, {flipped} switches over {seconds:.0f} s: "
              f"{written / seconds:.1f} etcd writes/s (standing changes), "
              f"{probed / seconds:.0f} probes/s")
    finally:
        if rule:
            flapping_rule(port, first, block, False)
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
