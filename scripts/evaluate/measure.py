"""The measurements of the four sections, through Terraform and the sdsec CLI.

Each function takes the Run (harness.py) and the configuration (evaluate.Config), records
figures with run.add and raises harness.Failure when a measurement cannot be made.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import evaltool
import outputs
import render
from harness import capture, die, log, run as run_command
from stats import rounded

TOKEN = "quickstart-token"  # the quickstart's demo deployer token (roles deployer, reader)
EVALTOOL = Path(__file__).resolve().with_name("evaltool.py")


def tool(*args):
    return [sys.executable, EVALTOOL, *args]


def since(t0):
    return rounded(time.time() - t0, 3)


def write_ids(d, ids):
    """D/ids.want, which tells the poller which instances to wait for: whole, or not there."""
    (d / "ids.tmp").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    os.replace(d / "ids.tmp", d / "ids.want")


def policy(run, d, principals=(), level=None, rate=None):
    """D/policy.yaml: the quickstart policy with extra reader PRINCIPALS (NAME=TOKEN), the
    Hardening LEVEL and the rate limit RATE, checked by `sdsec check`."""
    base = run.root / "examples" / "quickstart" / "policy.yaml"
    try:
        text = evaltool.rewrite_policy(base.read_text(encoding="utf-8"), principals, level, rate)
    except ValueError as e:
        die(f"{e} in {base}; update scripts/evaluate/evaltool.py")
    (d / "policy.yaml").write_text(text, encoding="utf-8")
    rc, report = capture([run.sdsec, "check", d / "policy.yaml"], stderr=subprocess.STDOUT)
    if rc != 0:
        die("the generated policy does not check: " + "\n".join(report.splitlines()[:3]))


def fill_pool(run, d, size):
    """Apply until the pool holds SIZE ready members. The state's `ready` is only current after
    a refresh (members taken by unikernels in the apply that wrote it still count), and an
    apply refreshes, then refills what is missing."""
    for i in range(1, 6):
        run.apply(d)
        ready = run.out(d, "pool_ready")
        if ready and int(ready[0]) >= size:
            return
        log(f"pool: {ready[0] if ready else '?'}/{size} ready after apply {i}, applying again")
    die(f"the pool did not refill to {size} members")


def poll(run, d, token, t0, out, interval, timeout):
    """Start the poller: it probes every instance D's state directory records, as soon as it
    is recorded, so that the first 200 is seen when it happens, not once Terraform returned."""
    for f in ("ids.want", out):
        (d / f).unlink(missing_ok=True)
    return run.start_background(tool("propagate", "--state-dir", d / "state", "--token", token, "--t0", f"{t0:.6f}",
                                     "--ids-file", d / "ids.want", "--out", d / out, "--interval", interval,
                                     "--timeout", timeout))


def load(run, url, requests, concurrency, warmup=None):
    """One run of the load generator; its JSON line."""
    args = ["load", "--url", url, "--token", TOKEN, "--requests", requests, "--concurrency", concurrency]
    rc, text = capture(tool(*args, *(["--warmup", warmup] if warmup is not None else [])), stderr=None)
    if rc != 0:
        die(f"the load generator failed on {url} (exit status {rc})")
    return text.strip()


# ---------------------------------------------------------------------------------- ondemand

def measure_start(run, cfg, d, key, warm):
    """One timed apply that adds the unikernel, until its first authenticated 200."""
    if warm == "none":
        run.write_config(d, 1)
    else:
        run.write_config(d, 1, warm, cfg.pool_size, use_pool=True)
    t0 = time.time()
    poller = poll(run, d, TOKEN, t0, "first.json", "0.02", "600")
    run.apply(d)
    t_apply = since(t0)
    write_ids(d, run.out(d, "ids"))
    if run.wait_background(poller) != 0:
        die(f"no authenticated 200 from the new instance ({' '.join(map(str, run.out(d, 'endpoints')))})")
    t200 = rounded(outputs.enforce_times((d / "first.json").read_text(encoding="utf-8"))[0], 3)
    boot = run.out(d, "boot_ms")
    run.add(key + ".apply", t_apply)
    run.add(key + ".t200", t200)
    for b in boot:
        run.add(key + ".boot", float(b))
    run.note_accel(d)
    log(f"  {key}: first 200 after {t200:.3f} s, apply {t_apply:.3f} s, boot_ms {' '.join(map(str, boot))}")


def ondemand_mode(run, cfg, warm):
    key = f"ondemand-{warm}"
    d = run.newdir(key)
    policy(run, d)
    if warm == "none":
        run.write_config(d, 0)
    else:
        log(f"creating the pool (warm = {warm}, size {cfg.pool_size}; not timed)")
        run.write_config(d, 0, warm, cfg.pool_size, use_pool=True)
    run.apply(d)
    for i in range(1, cfg.runs + 1):
        log(f"ondemand ({warm}) run {i}/{cfg.runs}")
        if warm == "none":
            # Drop the image the previous run generated, so that each run generates its own.
            rc = run_command([run.sdsec, "--state-dir", d / "state", "images", "gc"])
            if rc != 0:
                die(f"sdsec images gc failed (exit status {rc})")
            images = d / "state" / "images"
            if images.is_dir() and any(p.name[:1] in "0123456789abcdef" for p in images.iterdir()):
                die(f"sdsec images gc left an image in {images}: the run would not generate its own")
        else:
            fill_pool(run, d, cfg.pool_size)
        measure_start(run, cfg, d, key, warm)
        # Destroy the unikernel only; with a pool, this apply also refills it.
        run.write_config(d, 0, warm, cfg.pool_size, use_pool=warm != "none")
        run.apply(d)


def run_modes(run, cfg, modes, selected, label, measure, variable):
    """Measures each selected mode in turn; the error of each (None when it ran) by mode."""
    errors = {}
    for mode in modes:
        if mode in selected:
            errors[mode] = run.attempt(f"{label}-{mode}", measure, run, cfg, mode)
        else:
            errors[mode] = f"not run ({variable})"
    return errors


def ondemand(run, cfg):
    errors = run_modes(run, cfg, render.ONDEMAND_MODES, cfg.ondemand_modes, "ondemand", ondemand_mode,
                       "EVAL_ONDEMAND_MODES")
    return render.ondemand(run.results, errors, cfg.pool_size)


# -------------------------------------------------------------------------------- protection

def protected(run, cfg):
    d = run.newdir("protection-vm")
    # The quickstart policy with its rate limit raised so far that it never refuses: the load
    # test then measures what enforcing costs, not the configured 50 requests/s.
    policy(run, d, rate=1000000)
    run.write_config(d, 0)
    run.apply(d)
    for i in range(1, cfg.runs + 1):
        log(f"protection: boot {i}/{cfg.runs} of the protected API")
        measure_start(run, cfg, d, "protected", "none")
        if i < cfg.runs:
            run.write_config(d, 0)
            run.apply(d)
    endpoint = run.out(d, "endpoints")[0]
    digest = run.out(d, "digests")[0]
    image = d / "state" / "images" / digest.removeprefix("sha256:")
    if not image.is_dir():
        die(f"image directory {image} not found")
    # The kernel is stored once per digest, beside the images, under the digest the manifest names.
    manifest = json.loads((image / "manifest.json").read_text())
    kernel = image.parent / "kernels" / manifest["kernel"]["sha256"].removeprefix("sha256:")
    for f in (image / "initramfs.cpio", kernel):
        if not f.is_file():
            die(f"{f} not found")
    run.add("size.initramfs", (image / "initramfs.cpio").stat().st_size)
    run.add("size.kernel", kernel.stat().st_size)
    for i in range(1, cfg.load_runs + 1):
        log(f"protection: load test {i}/{cfg.load_runs} on the protected API ({cfg.requests} requests, "
            f"{cfg.concurrency} connections)")
        add_load(run, "protected", load(run, endpoint, cfg.requests, cfg.concurrency))


def add_load(run, who, line):
    sys.stderr.write(line + "\n")
    for k, v in outputs.load_result(line).items():
        run.add(f"{who}.{k}", v)


def unprotected(run, cfg):
    run.add("size.app", run.app.stat().st_size)
    port = evaltool.free_port()
    url = f"127.0.0.1:{port}"
    log(f"protection: start-up of the unprotected API ({cfg.runs} times)")
    rc, text = capture(tool("startup", "--runs", cfg.runs, "--url", url, "--", run.app, "--listen", url), stderr=None)
    if rc != 0:
        die(f"the unprotected API did not start (exit status {rc})")
    for s in outputs.startup_seconds(text):
        run.add("unprotected.start_ms", rounded(s * 1000, 1))
    app = run.start_background([run.app, "--listen", url])
    if not evaltool.wait_200(url, "/items", "", timeout=30, interval=0.02):
        die(f"the unprotected API did not answer on {url}")
    for i in range(1, cfg.load_runs + 1):
        log(f"protection: load test {i}/{cfg.load_runs} on the unprotected API")
        add_load(run, "unprotected", load(run, url, cfg.requests, cfg.concurrency))
    app.terminate()
    app.wait()


def protection(run, cfg):
    err_vm = run.attempt("protection-vm", protected, run, cfg)
    err_host = run.attempt("protection-host", unprotected, run, cfg)
    return render.protection(run.results, err_vm, err_host, run.accel, cfg.requests, cfg.concurrency, cfg.cores)


# ------------------------------------------------------------------------------- propagation

class Rollout:
    """What one propagation mode changes from one timed apply to the next."""

    def __init__(self):
        self.principals = []  # NAME=TOKEN, every one added so far
        self.level = "strict"


def prop_change(run, cfg, d, rollout, mode, n, r):
    """One timed policy change, until all N instances enforce it."""
    key = f"prop-{mode}-{n}"
    token = "eval-token-" + os.urandom(8).hex()
    rollout.principals.append(f"eval-{mode}-{n}-{r}={token}")
    if mode != "inplace":
        # A hardening change (it needs a new image): flip the level between strict and baseline.
        rollout.level = "baseline" if rollout.level == "strict" else "strict"
    policy(run, d, rollout.principals, rollout.level)
    ids_before = set(run.out(d, "ids"))
    if mode == "staged":
        # A staged rollout: the pool takes the new policy (and boots members of the new image)
        # first, timed apart; the timed apply then only swaps the instances.
        log(f"propagation ({mode}, N={n}, run {r}): warm the pool with the new image (-target=sdsec_pool.api)")
        t0 = time.time()
        run.tf(d, "apply", "-auto-approve", "-target=sdsec_pool.api")
        run.add(key + ".warmup", since(t0))
    level = "" if mode == "inplace" else f", hardening level {rollout.level}"
    log(f"propagation ({mode}, N={n}, run {r}): apply the change (new principal{level})")
    t0 = time.time()
    poller = poll(run, d, token, t0, "prop.json", cfg.poll_interval, "1800")
    run.apply(d)
    t_apply = since(t0)
    write_ids(d, run.out(d, "ids"))
    if run.wait_background(poller) != 0:
        die(f"not every instance enforced the change (see {d / 'prop.json'})")
    kept = len(ids_before & set(run.out(d, "ids")))
    times = [rounded(t, 3) for t in outputs.enforce_times((d / "prop.json").read_text(encoding="utf-8"))]
    run.add(key + ".all", max(times))
    run.add(key + ".first", min(times))
    for t in times:
        run.add(key + ".each", t)
    run.add(key + ".apply", t_apply)
    run.add(key + ".kept", kept)
    run.note_accel(d)
    log(f"  all {n} enforcing after {max(times):.3f} s (first {min(times):.3f} s), apply {t_apply:.3f} s, "
        f"ids kept {kept}/{n}")


def prop_mode(run, cfg, mode):
    d = run.newdir(f"prop-{mode}")
    rollout = Rollout()
    policy(run, d, level=rollout.level)
    for n in cfg.ns:
        log(f"propagation ({mode}): scale to {n} instance(s) (not timed)")
        if mode in ("pool", "staged"):
            run.write_config(d, n, "paused", n, use_pool=True, create_before_destroy=True)
        else:
            run.write_config(d, n)
        run.apply(d)
        for r in range(1, cfg.prop_runs + 1):
            if mode in ("pool", "staged"):
                fill_pool(run, d, n)
            prop_change(run, cfg, d, rollout, mode, n, r)


def propagation(run, cfg):
    errors = run_modes(run, cfg, render.PROP_MODES, cfg.prop_modes, "prop", prop_mode, "EVAL_PROP_MODES")
    return render.propagation(run.results, errors, cfg.ns, cfg.poll_interval)


# ----------------------------------------------------------------------------------- density

def memory_of(run, d, who, ids):
    """RSS and PSS of the QEMU of each instance."""
    for iid in ids:
        try:
            pid = int((d / "state" / "instances" / str(iid) / "qemu.pid").read_text().strip())
            status = Path(f"/proc/{pid}/status").read_text()
            smaps = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except (OSError, ValueError):
            die(f"no QEMU process for instance {iid}")
        rss, pss = outputs.rss_pss_mib(status, smaps)
        if rss is None or pss is None:
            die(f"no RSS or PSS for the QEMU of instance {iid} (pid {pid})")
        run.add(who + ".rss", rounded(rss, 1))
        run.add(who + ".pss", rounded(pss, 1))


def density_running(run, cfg):
    d = run.newdir("density")
    policy(run, d)
    log(f"density: boot {cfg.density_n} running instance(s)")
    run.write_config(d, cfg.density_n)
    run.apply(d)
    run.note_accel(d)
    for endpoint in run.out(d, "endpoints"):  # warm them a little, as instances that served requests
        load(run, endpoint, 50, 1, warmup=0)
    time.sleep(5)
    memory_of(run, d, "running", run.out(d, "ids"))


def density_paused(run, cfg):
    d = run.work / "density"
    log(f"density: add a pool of {cfg.density_n} paused instance(s)")
    run.write_config(d, cfg.density_n, "paused", cfg.density_n, use_pool=False)
    run.apply(d)
    fill_pool(run, d, cfg.density_n)
    time.sleep(5)
    memory_of(run, d, "paused", run.out(d, "pool_members"))


def density(run, cfg):
    available = round(outputs.proc_kib(Path("/proc/meminfo").read_text(), "MemAvailable") / 1024)
    # The pool joins the running instances' work dir, so nothing is torn down between the two
    # (no work dir is named density-later*); both are torn down after.
    err_running = run.attempt("density-later", density_running, run, cfg)
    if not err_running:
        err_paused = run.attempt("density-later", density_paused, run, cfg)
    else:
        err_paused = "not measured, as the running instances failed"
    run.teardown(run.work / "density")
    return render.density(run.results, available, err_running, err_paused, cfg.density_n, cfg.cores)
