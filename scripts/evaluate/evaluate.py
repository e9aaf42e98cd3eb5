#!/usr/bin/env python3
"""The evaluation of issues 6 and 14, on this machine, through Terraform and the embedded QEMU
backend, and through three cargo benchmarks: writes docs/guides/benchmarks.md with medians and
spreads (min–max, n) for
  ondemand     time to a protected, serving instance: on-demand generation + boot, from a
               pool of pre-built images (sdsec_pool warm = "image"), from a pool of paused
               instances (warm = "paused"), from a pool of snapshot copies (warm = "snapshot")
  protection   cost of protection: image size, boot time, throughput and p99 latency of the
               example API behind its runtime in the guest, against the same API run
               directly on the host
  propagation  policy propagation to N running instances: in place, by replacement, by
               replacement drawing from a pool of paused instances
  density      memory per running and per paused instance, and how many fit here
  lean         `cargo bench -p sdsec-engine --bench boot`: sdsec's kernel against Debian's,
               boot to serving, image generation and sizes, memory (PSS) with 1, 5 and 20
               instances, snapshot starts against cold boots
  runtime      `cargo bench -p sdsec-guest --bench overhead`: the runtime in host mode on
               loopback against the application direct, and nginx if it is installed
  compile      `cargo bench -p sdsec-sectosca --bench compile`: 1000 nodes, 3000 policies,
               the whole compile against the parse stage alone
Usage: scripts/evaluate.sh [ondemand|protection|propagation|density|lean|runtime|compile]...
       (default: all)
The whole document is always rewritten; sections not selected say "not run".
Environment (defaults in brackets):
  EVAL_RUNS [5]           repetitions for the timings of ondemand and protection
  EVAL_N ["1 5 10"]       instance counts for propagation
  EVAL_PROP_RUNS [1]      policy changes timed per mode and N
  EVAL_ONDEMAND_MODES ["none image paused snapshot"], EVAL_PROP_MODES ["inplace replace pool staged"]
                          the parts of ondemand and propagation to run
  EVAL_POOL_SIZE [2]      pool size for ondemand (propagation uses a pool of N)
  EVAL_DENSITY_N [3]      running instances, and paused pool members, for density
  EVAL_REQUESTS [2000]    requests per load test, EVAL_CONCURRENCY [4] connections,
  EVAL_LOAD_RUNS [3]      load tests per target
  EVAL_POLL_INTERVAL [0.1] seconds between two probes of one endpoint (propagation)
  EVAL_LEAN_BOOTS [5]     boots per kernel and snapshot starts (lean: SDSEC_BENCH_BOOTS)
  EVAL_LEAN_INSTANCES ["1 5 20"]  instances running at once for memory (SDSEC_BENCH_INSTANCES)
  EVAL_GUEST_SECONDS [3], EVAL_GUEST_ROUNDS [2], EVAL_GUEST_CONNECTIONS [8]
                          lean's runtime against the application in one guest: load per
                          path and round, rounds, connections (SDSEC_BENCH_GUEST_*)
  EVAL_RUNTIME_SECONDS [3], EVAL_RUNTIME_ROUNDS [2], EVAL_RUNTIME_CONNECTIONS [32]
                          load per path and round, rounds, connections (runtime)
  EVAL_COMPILE_SECONDS [5] criterion's measurement time per stage (compile)
  EVAL_OUT [docs/guides/benchmarks.md], TERRAFORM [.venv/bin/terraform]
  The benchmarks' own variables (SDSEC_BENCH_KERNELS, SDSEC_BENCH_SETTLE_S, NGINX, ...) and
  CARGO_TARGET_DIR pass through to them; cargo must be on PATH.
Needs scripts/build.sh first (the release provider, the static runtime and example API, both
kernels); lean, runtime and compile build their benchmark (release) with cargo.
Progress goes to stderr. Whatever happens (failure, Ctrl-C), everything applied is
destroyed and no VM is left behind.
"""

import os
import re
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import benches
import harness
import measure
import outputs
import render
import tfconfig
from harness import Failure, Interrupted, log

ROOT = Path(__file__).resolve().parents[2]


class UsageError(Exception):
    pass


# What measures each section: a function of the Run and the Config that gives its text.
MEASURES = {
    "ondemand": measure.ondemand,
    "protection": measure.protection,
    "propagation": measure.propagation,
    "density": measure.density,
    "lean": benches.lean,
    "runtime": benches.runtime,
    "compile": benches.compile_time,
}


def parse_sections(args):
    """The sections to run, in the order asked (all of them if none is); None for --help."""
    selected = []
    for arg in args:
        if arg in ("-h", "--help"):
            return None
        if arg not in render.SECTIONS:
            raise UsageError(f"unknown section `{arg}`")
        selected.append(arg)
    return selected or list(render.SECTIONS)


@dataclass
class Config:
    runs: int
    ns: list
    ondemand_modes: list
    prop_modes: list
    prop_runs: int
    pool_size: int
    density_n: int
    requests: int
    concurrency: int
    load_runs: int
    poll_interval: str  # as given: it goes into the poller's arguments and the document
    lean_boots: int
    lean_instances: list
    guest_seconds: str  # as given, as poll_interval
    guest_rounds: int
    guest_connections: int
    runtime_seconds: str  # as given, as poll_interval
    runtime_rounds: int
    runtime_connections: int
    compile_seconds: str
    out: Path
    terraform: Path
    cores: int

    @classmethod
    def from_env(cls, env, root=ROOT, cores=1):
        def number(name, default, kind=int, minimum=0):
            text = env.get(name, "").strip() or default
            try:
                value = kind(text)
            except ValueError:
                raise UsageError(f"{name}={text!r} is not a number") from None
            if value < minimum:
                raise UsageError(f"{name}={text!r} is below {minimum}")
            return value

        def words(name, default, allowed):
            items = (env.get(name, "").strip() or default).split()
            unknown = [w for w in items if w not in allowed]
            if unknown:  # a typo would otherwise silently skip a part
                raise UsageError(f"{name}: unknown {' '.join(unknown)} (known: {' '.join(allowed)})")
            return items

        def counts(name, default):
            items = (env.get(name, "").strip() or default).split()
            if not all(re.fullmatch(r"[1-9][0-9]*", n) for n in items):
                raise UsageError(f"{name}={' '.join(items)!r}: instance counts are whole numbers from 1")
            return [int(n) for n in items]

        def seconds(name, default, minimum=0.001):  # checked, and kept as written
            number(name, default, float, minimum)
            return env.get(name, "").strip() or default

        ns = counts("EVAL_N", "1 5 10")
        return cls(
            runs=number("EVAL_RUNS", "5", minimum=1),
            ns=ns,
            ondemand_modes=words("EVAL_ONDEMAND_MODES", "none image paused snapshot", render.ONDEMAND_MODES),
            prop_modes=words("EVAL_PROP_MODES", "inplace replace pool staged", render.PROP_MODES),
            prop_runs=number("EVAL_PROP_RUNS", "1", minimum=1),
            pool_size=number("EVAL_POOL_SIZE", "2", minimum=1),
            density_n=number("EVAL_DENSITY_N", "3", minimum=1),
            requests=number("EVAL_REQUESTS", "2000", minimum=1),
            concurrency=number("EVAL_CONCURRENCY", "4", minimum=1),
            load_runs=number("EVAL_LOAD_RUNS", "3"),  # 0: no load tests
            poll_interval=seconds("EVAL_POLL_INTERVAL", "0.1", minimum=0),
            lean_boots=number("EVAL_LEAN_BOOTS", "5", minimum=1),
            lean_instances=counts("EVAL_LEAN_INSTANCES", "1 5 20"),
            guest_seconds=seconds("EVAL_GUEST_SECONDS", "3"),
            guest_rounds=number("EVAL_GUEST_ROUNDS", "2", minimum=1),
            guest_connections=number("EVAL_GUEST_CONNECTIONS", "8", minimum=1),
            runtime_seconds=seconds("EVAL_RUNTIME_SECONDS", "3"),
            runtime_rounds=number("EVAL_RUNTIME_ROUNDS", "2", minimum=1),
            runtime_connections=number("EVAL_RUNTIME_CONNECTIONS", "32", minimum=1),
            compile_seconds=seconds("EVAL_COMPILE_SECONDS", "5"),
            out=Path(env.get("EVAL_OUT") or root / "docs" / "guides" / "benchmarks.md"),
            terraform=Path(env.get("TERRAFORM") or root / ".venv" / "bin" / "terraform"),
            cores=cores,
        )


def first_line(argv):
    """The first line a command prints, "" if it cannot run."""
    try:
        _rc, text = harness.capture(argv)
    except OSError:
        return ""
    return text.splitlines()[0] if text.strip() else ""


def utc(seconds):
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def machine(run, cfg):
    """The header table's rows: where, when and with what this run measured."""
    cpuinfo, meminfo = Path("/proc/cpuinfo").read_text(), Path("/proc/meminfo").read_text()
    commit = first_line(["git", "-C", run.root, "rev-parse", "--short", "HEAD"]) or "unknown"
    built = utc((run.root / "target" / "release" / "terraform-provider-sdsec").stat().st_mtime)
    uname = os.uname()
    return [
        ("date", utc(time.time())),
        ("commit", f"`{commit}` (provider binary built {built})"),
        ("CPU", f"{outputs.cpu_model(cpuinfo)}, {cfg.cores} cores"),
        ("RAM", "%.1f GiB" % (outputs.proc_kib(meminfo, "MemTotal") / 1048576)),
        ("kernel", f"{uname.sysname} {uname.release}"),
        ("QEMU", first_line(["qemu-system-x86_64", "--version"]) or "not found"),
        ("accelerator", render.accel_line(run.accel, outputs.has_virtualisation(cpuinfo))),
        ("Terraform", first_line([cfg.terraform, "version"])),
        ("load average at the end", outputs.loadavg(Path("/proc/loadavg").read_text())),
    ]


def evaluate(run, cfg, selected):
    (run.work / "cli.tfrc").write_text(tfconfig.cli_config(run.root / "target" / "release"), encoding="utf-8")
    os.environ["TF_CLI_CONFIG_FILE"] = str(run.work / "cli.tfrc")
    log(f"work dir {run.work}; sections: {' '.join(selected)}")
    sections = {}
    for s in selected:
        log(f"=== {s}")
        sections[s] = MEASURES[s](run, cfg)
    text = render.document(selected, machine(run, cfg), sections)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = cfg.out.with_name(f".{cfg.out.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, cfg.out)  # never a half-written document
    finally:
        tmp.unlink(missing_ok=True)
    log(f"wrote {cfg.out}")


def main(argv):
    try:
        selected = parse_sections(argv)
    except UsageError as e:
        print(f"evaluate.sh: {e}", file=sys.stderr)
        print(__doc__.rstrip("\n"), file=sys.stderr)
        return 2
    if selected is None:
        print(__doc__.rstrip("\n"))
        return 0
    try:
        cfg = Config.from_env(os.environ, ROOT, cores=len(os.sched_getaffinity(0)))
    except UsageError as e:
        print(f"evaluate.sh: {e}", file=sys.stderr)
        return 2
    sdsec = ROOT / "target" / "release" / "sdsec"
    app = ROOT / "target" / "x86_64-unknown-linux-gnu" / "guest" / "sdsec-example-api"
    for f in (cfg.terraform, sdsec, ROOT / "target" / "release" / "terraform-provider-sdsec", app):
        if not os.access(f, os.X_OK) or not f.is_file():
            print(f"evaluate.sh: {f} is missing; run scripts/setup.sh and scripts/build.sh", file=sys.stderr)
            return 1
    os.environ.update(LC_ALL="C", CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1")

    harness.install_signal_handlers()
    run = harness.Run(ROOT, cfg.terraform, sdsec, app, tempfile.mkdtemp(prefix="sdsec-eval."))
    rc = 0
    try:
        evaluate(run, cfg, selected)
    except Interrupted as e:
        rc = e.code
    except Failure:
        rc = 1  # logged when raised
    except Exception:
        sys.stderr.write(traceback.format_exc())
        rc = 1
    finally:
        while True:  # a signal before the clean-up ignores signals: start it again
            try:
                run.cleanup()
                break
            except Interrupted as e:
                rc = rc or e.code
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
