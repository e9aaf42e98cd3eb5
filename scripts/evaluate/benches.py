"""The sections measured by cargo benchmarks: lean (sdsec-engine's `boot`), runtime
(sdsec-guest's `overhead`) and compile (sdsec-sectosca's `compile`).

Each runs `cargo bench --locked` in release mode from the repository, with the evaluation's
environment plus SDSEC_BENCH_JSON (the file the benchmark writes its figures to, as JSON), the
settings of the EVAL_* variables, and a TMPDIR of its own in the work directory: whatever the
benchmark starts (QEMU, nginx) names that directory, so that it can be ended if the benchmark
could not end it (killed by a signal). The document's tables come from the JSON (benchdoc.py).
"""

import os
import shutil
import time

import benchdoc
import outputs
from harness import die, log, run_group

# Section -> (cargo package, bench target).
BENCHES = {
    "lean": ("sdsec-engine", "boot"),
    "runtime": ("sdsec-guest", "overhead"),
    "compile": ("sdsec-sectosca", "compile"),
}
# What the figures JSON of each says it is (its "bench").
NAMES = {"lean": "boot", "runtime": "overhead", "compile": "compile"}


def command(cfg, section, cargo="cargo"):
    """The command line of SECTION's benchmark."""
    package, bench = BENCHES[section]
    argv = [cargo, "bench", "--locked", "-p", package, "--bench", bench]
    if section == "compile":
        argv += ["--", "--measurement-time", cfg.compile_seconds]
    return argv


def environment(cfg, section, base, json_path, tmp):
    """The environment of SECTION's benchmark: BASE (the evaluation's) with the figures file
    JSON_PATH, the temporary directory TMP and the settings the EVAL_* variables give."""
    env = dict(base)
    env.update(SDSEC_BENCH_JSON=str(json_path), TMPDIR=str(tmp))
    if section == "lean":
        env.update(SDSEC_BENCH_BOOTS=str(cfg.lean_boots),
                   SDSEC_BENCH_INSTANCES=",".join(str(n) for n in cfg.lean_instances),
                   SDSEC_BENCH_GUEST_SECONDS=cfg.guest_seconds, SDSEC_BENCH_GUEST_ROUNDS=str(cfg.guest_rounds),
                   SDSEC_BENCH_GUEST_CONNECTIONS=str(cfg.guest_connections))
    elif section == "runtime":
        env.update(SECONDS=cfg.runtime_seconds, ROUNDS=str(cfg.runtime_rounds),
                   CONNECTIONS=str(cfg.runtime_connections))
    return env


def tail(text, lines=30):
    return "\n".join(text.splitlines()[-lines:])


def printed(text):
    """What the benchmark itself printed: its output from cargo's "Running" line on."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("Running "):
            return "\n".join(lines[i + 1:])
    return text


def measure(run, cfg, section, env, found):
    """Run SECTION's benchmark to its end. FOUND["figures"] gets its figures, also those a
    failed run wrote before it failed; raises Failure when it failed."""
    d = run.work / section
    shutil.rmtree(d, ignore_errors=True)
    tmp = d / "tmp"
    tmp.mkdir(parents=True)
    run.swept.append(tmp)
    json_path, log_path = d / "figures.json", d / "bench.log"
    cargo = shutil.which("cargo", path=env.get("PATH"))
    if cargo is None:
        die("cargo is not on PATH (rustup puts it in ~/.cargo/bin)")
    argv = command(cfg, section, cargo)
    log(f"{section}: {' '.join(argv[1:])} (its output: {log_path})")
    t0 = time.time()
    with open(log_path, "wb") as out:
        rc = run_group(argv, out, environment(cfg, section, env, json_path, tmp), run.root)
    left = run.sweep(tmp)
    if left:
        log(f"warning: ended {left} process(es) the benchmark left running")
    text = log_path.read_text(encoding="utf-8", errors="replace")
    log(f"{section}: the benchmark ended after {time.time() - t0:.0f} s (exit status {rc}); what it printed:")
    log_block(printed(text) if rc == 0 else tail(text))
    try:
        found["figures"] = outputs.bench_summary(json_path.read_text(encoding="utf-8"), NAMES[section])
    except (OSError, ValueError) as e:
        if rc == 0:
            die(f"no figures in {json_path.name} ({e}): does the benchmark write SDSEC_BENCH_JSON?")
    if rc != 0:
        die(outputs.bench_failure(text, rc))


def log_block(text):
    for line in text.splitlines():
        log("  | " + line)


def attempt(run, cfg, name, env=None):
    """NAME's figures (None if there are none) and error ("" if none) after one attempt at
    its benchmark, in the environment ENV (the evaluation's by default)."""
    found = {}
    error = run.attempt(name, measure, run, cfg, name, dict(os.environ) if env is None else env, found)
    return found.get("figures"), error


def lean(run, cfg):
    figures, error = attempt(run, cfg, "lean")
    if figures and not run.accel:
        run.accel = figures.get("accel")  # the header's accelerator, when no Terraform section ran
    return benchdoc.lean(figures, error, cfg.lean_boots)


def runtime(run, cfg):
    figures, error = attempt(run, cfg, "runtime")
    settings = {"connections": cfg.runtime_connections, "rounds": cfg.runtime_rounds, "seconds": cfg.runtime_seconds}
    return benchdoc.runtime(figures, error, settings)


def compile_time(run, cfg):
    figures, error = attempt(run, cfg, "compile")
    return benchdoc.compile_time(figures, error, cfg.compile_seconds)
