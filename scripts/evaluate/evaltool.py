#!/usr/bin/env python3
"""Helpers of the evaluation (scripts/evaluate.sh; Python standard library only). The poller,
the load generator and the start-up timer run as processes of their own, so that they do not
share an interpreter (and its lock) with the program that times Terraform; evaluate.py also
calls rewrite_policy, wait_200 and free_port directly.

  policy     write a variant of the quickstart policy (extra principals, hardening level,
             rate limit), so the evaluation can change a policy the way a user would
  wait200    poll an endpoint until an authenticated GET answers 200; print the seconds
             since --t0 (an epoch time)
  load       a small closed-loop load generator: keep-alive connections on threads, a fixed
             number of requests; print JSON with req/s and latency percentiles
  propagate  while a `terraform apply` runs, watch every instance recorded under a state
             directory and note when each first answers 200 to a token; stop once every id
             listed in --ids-file (written by the caller after the apply) has
  startup    start the unprotected application; seconds from the spawn to its first 200
"""

import argparse
import hashlib
import http.client
import json
import math
import os
import re
import socket
import sys
import threading
import time
import urllib.parse


def split_url(url):
    if "://" not in url:
        url = "http://" + url
    u = urllib.parse.urlsplit(url)
    return u.hostname, u.port or 80


def get_status(host, port, path, token, timeout):
    """One GET on a fresh connection: the status, or None if nothing answered."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        headers = {"Authorization": "Bearer " + token} if token else {}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


# ---------------------------------------------------------------------------------- policy

def rewrite_policy(text, principals=(), level=None, rate=None):
    """The policy TEXT with extra reader PRINCIPALS ("NAME=TOKEN"), the Hardening LEVEL and a
    rate limit of RATE requests/s (and burst). Edits the YAML as text, so that everything else
    (comments included) stays as the quickstart has it. Raises ValueError naming what it could
    not find."""

    def sub(pattern, repl, what):
        new, n = re.subn(pattern, repl, text, count=1, flags=re.M)
        if n != 1:
            raise ValueError(f"cannot find {what}")
        return new

    if principals:
        m = re.search(r"^( *)- name: deployer\n(?:\1  .*\n)+", text, flags=re.M)
        if not m:
            raise ValueError("cannot find the deployer principal")
        indent = m.group(1)
        extra = ""
        for spec in principals:
            name, _, token = spec.partition("=")
            digest = hashlib.sha256(token.encode()).hexdigest()
            extra += (f"{indent}- name: {name}\n{indent}  token_sha256: \"{digest}\"\n"
                      f"{indent}  roles: [reader]\n")
        text = text[: m.end()] + extra + text[m.end():]
    if level:
        text = sub(r"(type: sdsec\.policies\.Hardening\n(?: .*\n)*? *properties: \{ *level: *)\w+",
                   r"\g<1>" + level, "the Hardening level")
    if rate:
        text = sub(r"rate_limit: \{[^}]*\}",
                   f"rate_limit: {{ requests_per_second: {rate}, burst: {rate}, per: source }}",
                   "the Firewall rate_limit")
    return text


def cmd_policy(a):
    try:
        text = rewrite_policy(open(a.base, encoding="utf-8").read(), a.principal, a.level, a.rate)
    except ValueError as e:
        sys.exit(f"evaltool policy: {e} in {a.base}; update scripts/evaluate/evaltool.py")
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(text)


# --------------------------------------------------------------------------------- wait200

def wait_200(url, path, token, timeout, interval):
    """Poll URL until an authenticated GET of PATH answers 200: whether it did within TIMEOUT s."""
    host, port = split_url(url)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if get_status(host, port, path, token, 2.0) == 200:
            return True
        time.sleep(interval)
    return False


def cmd_wait200(a):
    if not wait_200(a.url, a.path, a.token, a.timeout, a.interval):
        sys.exit(f"evaltool wait200: {a.url}{a.path} did not answer 200 within {a.timeout:.0f} s")
    print(f"{time.time() - a.t0:.3f}")


# ------------------------------------------------------------------------------------ load

def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))  # nearest rank
    return sorted_values[k]


def cmd_load(a):
    host, port = split_url(a.url)
    headers = {"Authorization": "Bearer " + a.token} if a.token else {}
    lock = threading.Lock()
    remaining = [a.warmup]
    latencies, statuses, errors = [], {}, [0]

    def take():
        with lock:
            if remaining[0] <= 0:
                return False
            remaining[0] -= 1
            return True

    def worker(record):
        conn = http.client.HTTPConnection(host, port, timeout=a.timeout)
        while take():
            t = time.perf_counter()
            status = None
            for _attempt in range(2):  # a keep-alive connection the server closed: reconnect once
                try:
                    conn.request("GET", a.path, headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                    break
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=a.timeout)
            dt = time.perf_counter() - t
            if record:
                with lock:
                    if status is None:
                        errors[0] += 1
                    else:
                        statuses[status] = statuses.get(status, 0) + 1
                        latencies.append(dt)
        conn.close()

    def run(record):
        threads = [threading.Thread(target=worker, args=(record,)) for _ in range(a.concurrency)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - t0

    run(False)
    remaining[0] = a.requests
    elapsed = run(True)
    lat = sorted(latencies)
    ok = statuses.get(200, 0)
    print(json.dumps({
        "requests": a.requests, "concurrency": a.concurrency, "seconds": round(elapsed, 3),
        "rps": round(a.requests / elapsed, 1),
        "p50_ms": round(percentile(lat, 50) * 1000, 2), "p99_ms": round(percentile(lat, 99) * 1000, 2),
        "ok": ok, "statuses": {str(k): v for k, v in sorted(statuses.items())}, "errors": errors[0],
    }))


# ------------------------------------------------------------------------------- propagate

def cmd_propagate(a):
    instances = os.path.join(a.state_dir, "instances")
    first_ok = {}
    watched = set()
    lock = threading.Lock()
    stop = threading.Event()

    def watch(iid, host, port):
        record = os.path.join(instances, iid, "instance.json")
        while not stop.is_set():
            if get_status(host, port, a.path, a.token, 1.5) == 200:
                with lock:
                    first_ok.setdefault(iid, time.time() - a.t0)
                return
            if not os.path.exists(record):
                return
            stop.wait(a.interval)

    def scan():
        try:
            names = os.listdir(instances)
        except FileNotFoundError:
            return
        for iid in names:
            if iid in watched:
                continue
            try:
                with open(os.path.join(instances, iid, "instance.json"), encoding="utf-8") as f:
                    rec = json.load(f)
            except (OSError, ValueError):
                continue  # not written yet
            host, port = split_url(str(rec.get("endpoint", "")))
            if not host or not port:
                continue
            watched.add(iid)
            threading.Thread(target=watch, args=(iid, host, port), daemon=True).start()

    deadline = time.time() + a.timeout
    wanted = None
    while time.time() < deadline:
        scan()
        if wanted is None and os.path.exists(a.ids_file):
            with open(a.ids_file, encoding="utf-8") as f:
                wanted = [w for w in f.read().split() if w]
        if wanted is not None:
            with lock:
                if all(w in first_ok for w in wanted):
                    break
        time.sleep(0.05)
    stop.set()
    with lock:
        result = {"seen": dict(first_ok), "wanted": wanted or [],
                  "missing": [w for w in (wanted or []) if w not in first_ok]}
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(result, f)
    if result["missing"]:
        sys.exit(f"evaltool propagate: {len(result['missing'])} instance(s) never answered 200 to the new token")


# ----------------------------------------------------------------------------------- small

def cmd_startup(a):
    """Start the unprotected application --runs times; print the seconds from the spawn to
    the first answered GET each time (the process is stopped after each measurement)."""
    import subprocess
    host, port = split_url(a.url)
    for _ in range(a.runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(a.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = t0 + a.timeout
            while get_status(host, port, a.path, a.token, 1.0) != 200:
                if proc.poll() is not None or time.perf_counter() > deadline:
                    sys.exit(f"evaltool startup: {a.command[0]} did not serve {a.url}{a.path}")
                time.sleep(0.001)
            print(f"{time.perf_counter() - t0:.4f}")
        finally:
            proc.terminate()
            proc.wait()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("policy")
    s.add_argument("--base", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--principal", action="append", default=[], help="NAME=TOKEN, role reader")
    s.add_argument("--level", choices=["baseline", "strict"])
    s.add_argument("--rate", type=int, help="requests per second (and burst) of the rate limit")
    s.set_defaults(fn=cmd_policy)

    s = sub.add_parser("wait200")
    s.add_argument("--url", required=True)
    s.add_argument("--token", default="")
    s.add_argument("--path", default="/items")
    s.add_argument("--t0", type=float, required=True)
    s.add_argument("--timeout", type=float, default=300)
    s.add_argument("--interval", type=float, default=0.02)
    s.set_defaults(fn=cmd_wait200)

    s = sub.add_parser("load")
    s.add_argument("--url", required=True)
    s.add_argument("--token", default="")
    s.add_argument("--path", default="/items")
    s.add_argument("--requests", type=int, default=2000)
    s.add_argument("--concurrency", type=int, default=4)
    s.add_argument("--warmup", type=int, default=100)
    s.add_argument("--timeout", type=float, default=30)
    s.set_defaults(fn=cmd_load)

    s = sub.add_parser("propagate")
    s.add_argument("--state-dir", required=True)
    s.add_argument("--token", required=True)
    s.add_argument("--path", default="/items")
    s.add_argument("--t0", type=float, required=True)
    s.add_argument("--ids-file", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--interval", type=float, default=0.1)
    s.add_argument("--timeout", type=float, default=1200)
    s.set_defaults(fn=cmd_propagate)

    s = sub.add_parser("startup")
    s.add_argument("--url", required=True)
    s.add_argument("--token", default="")
    s.add_argument("--path", default="/items")
    s.add_argument("--runs", type=int, default=5)
    s.add_argument("--timeout", type=float, default=30)
    s.add_argument("command", nargs="+")
    s.set_defaults(fn=cmd_startup)

    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
