#!/usr/bin/env python3
"""Probes per second per replica with three replicas sharing health checking through etcd.

Starts a real etcd (Debian's etcd-server) on free loopback ports, one TCP sink that accepts
every probe on 0.0.0.0:PORT (so each of the many targets is a distinct 127.x.y.z address on
one port), and three `switchyard serve --etcd` replicas of one config with TARGETS endpoints
under a TCP check every INTERVAL seconds. Once the three share, it reads each replica's
switchyard_health_probes counters and CPU time over WINDOW seconds, then does the same with
one replica alone (no --etcd) for comparison. Everything runs on loopback and stops by itself.

    python3 benches/replicas/probe_rate.py [--targets 30000] [--interval 10] [--window 30]
        [--binary target/release/switchyard]
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

PER_NEG = 500


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sink(port, on_probe=None):
    """Accepts and closes connections on every loopback address until the process ends,
    calling `on_probe(address probed)` for each when given."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(8192)

    def serve():
        while True:
            connection, _ = server.accept()
            if on_probe:
                on_probe(connection.getsockname()[0])
            connection.close()

    threading.Thread(target=serve, daemon=True).start()


def address(i):
    # 127.1.0.1 onwards: skips 127.0.0.x and x.x.x.0 / .255.
    i += 1
    return f"127.{1 + i // 64516}.{1 + (i // 254) % 254}.{1 + i % 254}"


def config(targets, interval, port):
    lines = [
        "healthChecks:",
        f"- {{name: tcp, type: TCP, checkIntervalSec: {interval}, timeoutSec: 5, "
        "tcpHealthCheck: {portSpecification: USE_SERVING_PORT}}",
        "networkEndpointGroups:",
    ]
    negs = (targets + PER_NEG - 1) // PER_NEG
    for n in range(negs):
        lines += [f"- name: neg-{n}", "  zone: us-central1-a", "  endpoints:"]
        for i in range(n * PER_NEG, min(targets, (n + 1) * PER_NEG)):
            lines.append(f"  - {{ipAddress: {address(i)}, port: {port}}}")
    lines.append("backendServices:")
    for n in range(negs):
        lines += [
            f"- name: pool-{n}",
            "  protocol: TCP",
            "  healthChecks: [tcp]",
            f"  backends: [{{group: neg-{n}, balancingMode: CONNECTION, maxConnectionsPerEndpoint: 10}}]",
        ]
    return "\n".join(lines) + "\n"


def get(url):
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.read().decode()


def probes(admin):
    text = get(f"{admin}/metrics")
    return sum(
        float(m.group(1))
        for m in re.finditer(r'^switchyard_health_probes_total\{[^}]*\} (\S+)$', text, re.M)
    )


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait(what, check, patience=300):
    deadline = time.time() + patience
    while time.time() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"gave up waiting for {what}")


def start_etcd(etcd_binary, work, children):
    """A one-member etcd on free loopback ports (added to `children`); its client URL."""
    client, peer = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    etcd = subprocess.Popen(
        [etcd_binary, "--name", "bench", "--data-dir", os.path.join(work, "etcd"),
         "--listen-client-urls", client, "--advertise-client-urls", client,
         "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
         "--initial-cluster", f"bench={peer}", "--log-level", "warn"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "etcd.log"), "w"),
    )
    children.append(etcd)
    wait("etcd", lambda: "true" in get(f"{client}/health"))
    return client


def serve(binary, path, work, name, extra):
    admin = f"127.0.0.1:{free_port()}"
    log = open(os.path.join(work, f"{name}.log"), "w")
    child = subprocess.Popen(
        [binary, "serve", path, "--xds-listen", f"127.0.0.1:{free_port()}",
         "--admin-listen", admin, *extra],
        stdout=subprocess.DEVNULL, stderr=log,
    )
    return child, f"http://{admin}"


def reading(child, admin):
    """(when, probes so far, CPU seconds so far) of one replica; `when` is the middle of the
    /metrics read, which a busy debug build can take a while to answer."""
    asked = time.time()
    count = probes(admin)
    return (asked + time.time()) / 2, count, cpu_seconds(child.pid)


def measure(replicas, window):
    # Each replica's rate over its own two readings: reading the others takes time too.
    before = [reading(c, a) for c, a in replicas]
    time.sleep(window)
    after = [reading(c, a) for c, a in replicas]
    return [
        ((p1 - p0) / (t1 - t0), 100 * (c1 - c0) / (t1 - t0))
        for (t0, p0, c0), (t1, p1, c1) in zip(before, after)
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=30000)
    parser.add_argument("--interval", type=int, default=10)
    parser.add_argument("--window", type=float, default=30)
    parser.add_argument("--binary", default="target/debug/switchyard")
    args = parser.parse_args()
    etcd_binary = shutil.which("etcd") or sys.exit("needs etcd: apt-get install etcd-server")
    work = tempfile.mkdtemp(prefix="probe-rate-")
    children = []
    try:
        port = free_port()
        sink(port)
        path = os.path.join(work, "fleet.yaml")
        with open(path, "w") as f:
            f.write(config(args.targets, args.interval, port))
        client = start_etcd(etcd_binary, work, children)
        replicas = []
        for name in ["r1", "r2", "r3"]:
            replica = serve(args.binary, path, work, name,
                            ["--etcd", client, "--replica-name", name])
            children.append(replica[0])
            replicas.append(replica)

        def sharing():
            for _, admin in replicas:
                cluster = json.loads(get(f"{admin}/cluster"))
                owned = sum(m["targets_owned"] for m in cluster["members"])
                if not (cluster["sharing"] and len(cluster["members"]) == 3
                        and cluster["targets"] == args.targets and owned == args.targets):
                    return False
            return True

        wait("three replicas sharing", sharing)
        # One interval for every target's first round under the settled ownership.
        time.sleep(args.interval)
        shared = measure(replicas, args.window)
        owned = {m["name"]: m["targets_owned"]
                 for m in json.loads(get(f"{replicas[0][1]}/cluster"))["members"]}
        for child, _ in replicas:
            child.send_signal(signal.SIGTERM)
            child.wait()
        alone = serve(args.binary, path, work, "alone", [])
        children.append(alone[0])
        wait("the lone replica to probe", lambda: probes(alone[1]) > 0)
        time.sleep(args.interval)
        (alone_rate, alone_cpu), = measure([alone], args.window)
        print(f"{args.targets} targets, TCP check every {args.interval} s, "
              f"{args.window:.0f} s window, {os.path.basename(args.binary)} "
              f"({'release' if 'release' in args.binary else 'debug'} build)")
        for (name, (rate, cpu)) in zip(["r1", "r2", "r3"], shared):
            print(f"  shared  {name}: owns {owned[name]:>6} targets, "
                  f"{rate:8.1f} probes/s, {cpu:5.1f}% CPU")
        print(f"  shared total: {sum(r for r, _ in shared):8.1f} probes/s "
              f"(one checker: {args.targets / args.interval:.1f})")
        print(f"  alone (no --etcd): {alone_rate:8.1f} probes/s, {alone_cpu:5.1f}% CPU")
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
