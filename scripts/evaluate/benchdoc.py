"""The sections of docs/guides/benchmarks.md that cargo benchmarks measure (lean, runtime,
compile), rendered from the JSON each benchmark wrote to SDSEC_BENCH_JSON.

Pure functions: FIGURES is that JSON (a dict; times are every sample in ms, sizes in bytes,
memory in MiB), None when there is none; ERROR is "" or why the benchmark failed. A failed
benchmark's figures are rendered as far as they go, followed by the failure. Each section ends
with a newline.
"""

import textwrap

from outputs import error_summary
from stats import DASH, cell, median, mib, ratio

# How the document names the kernels the boot benchmark knows by their SDSEC_BENCH_KERNELS label.
KERNEL_NAMES = {"sdsec": "sdsec's kernel", "debian-cloud": "Debian's cloud kernel"}


def kernel_name(label):
    return KERNEL_NAMES.get(label, f"kernel `{label}`")


def failure(error):
    """The failure paragraph: "failed: ..." ("" when there is none)."""
    return f"failed: {error}\n\n" if error else ""


def prose(text):
    """TEXT as one paragraph wrapped at 92 columns, whatever the lengths of the figures in it."""
    return textwrap.fill(" ".join(text.split()), width=92, break_long_words=False, break_on_hyphens=False) + "\n"


def vs(a, b):
    """The ratio of the medians of two lists of samples."""
    return ratio(median(a), median(b))


# --------------------------------------------------------------------------------------- lean

def lean_kernels(kernels):
    """Parts 1 to 3 of the boot benchmark: a column per kernel, then first / second."""
    two = len(kernels) == 2
    head = "| ms unless said: median (min–max) | " + " | ".join(kernel_name(k["label"]) for k in kernels) + " |"
    if two:
        head += f" {kernels[0]['label']} / {kernels[1]['label']} (medians) |"
    rows = [head, "|---" * (len(kernels) + 1 + two) + "|"]

    def row(what, show, of=None):
        """A row: SHOW(kernel) per kernel, then the ratio of OF(kernel) between the two."""
        cells = [show(k) for k in kernels]
        if two:
            cells.append(ratio(of(kernels[0]), of(kernels[1])) if of else "")
        rows.append("|" + "".join(f" {c} |" if c else " |" for c in [what, *cells]))

    def timed(what, key, digits):
        count = len(kernels[0].get(key, []))
        row(f"{what} (n={count})", lambda k: cell(k.get(key, []), digits), lambda k: median(k.get(key, [])))

    def versus_cold(what, key):
        row(what, lambda k: vs(k.get(key, []), k.get("cold_build_ms", [])))

    timed("boot: QEMU start → ready", "ready_ms", 0)
    timed("boot: QEMU start → serving (first authenticated 200)", "serving_ms", 0)
    timed("image: cold build, fresh store", "cold_build_ms", 1)
    timed("image: cold build, kernel already stored", "cold_build_kernel_stored_ms", 1)
    timed("image from the store: first check in a process, ≥ 2 s after the build", "store_verified_ms", 1)
    versus_cold("  ÷ cold build (medians)", "store_verified_ms")
    timed("image from the store: again (memoised)", "store_memoised_ms", 2)
    versus_cold("  ÷ cold build (medians)", "store_memoised_ms")
    for what, key in (("size: kernel file (stored once per digest)", "kernel_bytes"),
                      ("size: initramfs (`initramfs.cpio`, uncompressed)", "initramfs_bytes"),
                      ("size: image directory (manifest, initramfs, sums; no kernel)", "image_dir_bytes")):
        row(what, lambda k, key=key: mib(k.get(key)) or DASH, lambda k, key=key: k.get(key))
    row("guest memory (MiB): the policy's `memory_mb` / the kernel's minimum",
        lambda k: f"{k.get('memory_mb', '?')} / {k.get('min_memory_mb') or '?'}")
    row("QEMU's TCG translation cache (MiB; used without KVM)", lambda k: str(k.get("tcg_cache_mb", "?")))
    return "\n".join(rows) + "\n"


def lean_snapshot(snapshot, cold):
    """Snapshot starts of the first kernel's image against its cold boots (COLD: its kernel's figures)."""
    serving = cold.get("serving_ms", [])
    rows = [
        f"| start of the same image ({kernel_name(snapshot.get('label', cold['label']))}) | n "
        "| ms: median (min–max) | ÷ cold boot (medians) |",
        "|---|---|---|---|",
        f"| cold boot: QEMU start → serving (the table above) | {len(serving)} | {cell(serving, 0)} | baseline |",
    ]
    for what, key in (("from its snapshot, as `sdsec run --snapshot`: verify the state, start → serving", "run_ms"),
                      ("  of which the start alone → serving", "start_ms"),
                      ("  of which verifying the state (SHA-256, once per process)", "verify_ms")):
        v = snapshot.get(key, [])
        rows.append(f"| {what} | {len(v)} | {cell(v, 0 if key != 'verify_ms' else 1)} | {vs(v, serving)} |")
    save = cell([snapshot["save_ms"]], 0) if "save_ms" in snapshot else DASH
    rows.append(f"| snapshot: saving it (paused → on disk), once | 1 | {save} | |")
    rows.append(f"| snapshot: size on disk | | {mib(snapshot.get('bytes')) or DASH} | |")
    return "\n".join(rows) + "\n"


def lean_memory(memory, kernels):
    """Part 4: a row per series reading; PSS beside the second kernel's at the same count."""
    base_label = kernels[1]["label"] if len(kernels) > 1 else None
    base = {r["instances"]: r["pss_mib"] for r in memory
            if r.get("kernel") == base_label and "pss_mib" in r and "ksm" not in r}
    head_base = f"PSS ÷ {kernel_name(base_label)}'s, same count" if base_label else "PSS ÷ baseline"
    rows = [
        f"| kernel | hardening | guest MiB | instances at once | PSS per QEMU (MiB) | RSS per QEMU (MiB) | {head_base} "
        "| booting the added ones took (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in memory:
        name, n = kernel_name(r.get("kernel", "?")), r.get("instances")
        hardening, guest = f"`{r.get('hardening', '?')}`", r.get("memory_mb", "?")
        ksm = r.get("ksm")
        if ksm and "error" in ksm:
            rows.append(f"| {name} | {hardening} | {guest} | {n} | KSM not measured: {error_summary(ksm['error'])} "
                        "| | | |")
            continue
        if ksm:
            hardening += (f", after KSM ({ksm.get('full_scans', '?')} full scans in {ksm.get('seconds', 0):.0f} s, "
                          f"{ksm.get('saved_mib', 0):.1f} MiB merged)")
        if r.get("kernel") == base_label and not ksm:
            versus = "baseline"
        else:
            versus = ratio(r.get("pss_mib"), base.get(n))
        booted = f"{r['booted_s']:.0f}" if "booted_s" in r else DASH
        rows.append(f"| {name} | {hardening} | {guest} | {n} | {r.get('pss_mib', 0):.1f} | {r.get('rss_mib', 0):.1f} "
                    f"| {versus} | {booted} |")
    return "\n".join(rows) + "\n"


def lean_in_guest(guest, accel):
    """Part 5: the runtime in a guest against the same guest's application reached directly
    (GUEST: the figures' "in_guest"): its table, or why it failed, then what it measured."""
    paths = guest.get("paths") or []
    bare = next((p for p in paths if p.get("key") == "bare"), None)
    text = ""
    if paths:
        rows = [f"| to the application in one guest ({kernel_name(guest.get('label', '?'))}) | req/s (each round) "
                "| ÷ bare | p50 (ms) | p99 (ms) | QEMU's CPU µs per request |",
                "|---|---|---|---|---|---|"]
        for p in paths:
            rps = p.get("rps", 0)
            rounds = ", ".join("%.0f" % r for r in p.get("rps_by_round", []))
            versus = "baseline" if p is bare else ratio(rps, bare and bare.get("rps"))
            rows.append(f"| {p.get('name', p.get('key'))} | {rps:.0f} ({rounds}) | {versus} | {p.get('p50_ms', 0):.2f} "
                        f"| {p.get('p99_ms', 0):.2f} | {p.get('cpu_us_per_request', {}).get('qemu', 0):.0f} |")
        text = "\n".join(rows) + "\n\n"
    error = guest.get("error") or ("" if paths else "the part gave no figures")
    return text + failure(error) + prose(f"""
In a guest: one instance of the quickstart image ({kernel_name(guest.get('label', '?'))},
{guest.get('vcpus', '?')} vCPU, {guest.get('memory_mb', '?')} MiB, accelerator {accel or '?'}; its rate limit
raised to 1 000 000 requests/s so that it never refuses), and the same instance's application
reached two ways: through its runtime, at the endpoint the user network forwards to the
runtime's port, and bare, through a second forward to the application's own port that the
benchmark adds at run time over QMP (`hostfwd_add`). The overhead benchmark's load generator
([section 6](#6-runtime-overhead-on-the-host)) sends both the same request, GET `/items` with the quickstart token (which the
application ignores), over {guest.get('connections', '?')} keep-alive connections with one
request in flight each, {guest.get('seconds', '?')} s per path and round, bare first,
{guest.get('rounds', '?')} round(s) summed. Both paths pay the same emulated CPU and user network, so
their ratio is what the runtime costs inside a guest; the CPU is the whole QEMU process's (the
guest's kernel, runtime and application).
""")


def lean(figures, error, boots="n"):
    """BOOTS: as configured, for the text when the figures do not say."""
    figures = figures or {}
    kernels = figures.get("kernels") or []
    parts = []
    if kernels:
        parts.append(lean_kernels(kernels))
    if kernels and figures.get("snapshot"):
        parts.append(lean_snapshot(figures["snapshot"], kernels[0]))
    if figures.get("memory"):
        parts.append(lean_memory(figures["memory"], kernels))
    guest = figures.get("in_guest")
    if not error and not parts and not guest:
        error = "the benchmark gave no figures"
    boots = figures.get("boots", boots)
    where = (f"accelerator {figures['accel']}, {figures.get('cpus', '?')} CPUs" if "accel" in figures
             else "accelerator not recorded")
    return "\n".join(parts) + ("\n" if parts else "") + failure(error) + prose(f"""
From `cargo bench -p sdsec-engine --bench boot` (provider/engine/benches/boot/), with no
Terraform: the quickstart policy and the static example API built into one image per kernel
and booted by the engine itself, QEMU `microvm` with its user network on 127.0.0.1 ({where}).
Boot: {boots} boots per kernel, alternating between the kernels, each from QEMU's start to
ready (the runtime's health path answers) and to serving (a GET `/items` through the runtime
with the quickstart token answers 200). Image: a cold build in a fresh store (3 times), a new
image (another policy) whose kernel the store already holds, and the stored image handed out
again, first in this process at least 2 s after its build (full verification, what each new
provider process pays) and then memoised; each against the cold build. Sizes are the files
the store holds: the kernel once per digest under `<state_dir>/images/kernels/`, shared by
every image booting it, and per image its directory. Snapshot: the first kernel's image booted
once for a snapshot and saved, then {boots} copies started from it, each verified against its
digest and given its own key, randomness and clock before it serves, against the cold boots
above. Memory: mean PSS and RSS per QEMU (`/proc/<pid>/smaps_rollup`) with that many
instances running at once, booted one after the other (the last column: the time to boot
those added since the previous count) and read after a settle time; the
first kernel at every count (SDSEC_BENCH_INSTANCES), and up to 5 at the kernel's minimum
memory and with hardening `baseline` (no `init_on_free=1`); the second kernel up to 5, as the
baseline; with 5 of the first at `baseline` (the level whose guest memory is offered to
KSM; `strict` guests' never is), PSS again after KSM has scanned twice (its settings restored
after). Every ratio is of medians from this run. Issue 14 aims at: serving ≤ 0.40 of Debian's
kernel, the image from the store ≤ 0.10 of a cold build, ≤ 64 MiB PSS per instance with 5
running, `sdsec run --snapshot` ≤ 0.20 of a cold boot. Starts through Terraform from pools of
paused instances and of snapshot copies, beside on-demand ones, are in
[section 1](#1-time-to-a-protected-serving-instance).
""") + ("\n" + lean_in_guest(guest, figures.get("accel")) if guest else "")


# ------------------------------------------------------------------------------------ runtime

def runtime(figures, error, settings=None):
    """SETTINGS: connections, rounds and seconds as configured, for the text when the figures
    do not say."""
    figures = {**(settings or {}), **(figures or {})}
    paths = figures.get("paths") or []
    by_key = {p.get("key"): p for p in paths}
    direct, nginx = by_key.get("direct"), by_key.get("nginx")
    rows = []
    if paths:
        rows = [
            "| path | req/s | ÷ direct | ÷ nginx | p50 (ms) | p99 (ms) | p99 ÷ nginx's "
            "| CPU µs per request: application / proxy / load generator |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for p in paths:
            proxy = p.get("key") in ("proxied", "open")
            rps, p99 = p.get("rps"), p.get("p99_ms")
            cpu = p.get("cpu_us_per_request", {})
            to_direct = "baseline" if p is direct else ratio(rps, direct and direct.get("rps"))
            to_nginx = ratio(rps, nginx.get("rps")) if proxy and nginx else DASH
            p99_nginx = ratio(p99, nginx.get("p99_ms")) if proxy and nginx else DASH
            rows.append(f"| {p.get('name', p.get('key'))} | {rps:.0f} | {to_direct} | {to_nginx} "
                        f"| {p.get('p50_ms', 0):.3f} | {p99:.3f} | {p99_nginx} "
                        f"| {cpu.get('app', 0):.1f} / {cpu.get('proxy', 0):.1f} / {cpu.get('load', 0):.1f} |")
    skipped = figures.get("nginx_skipped")
    text = "\n".join(rows) + ("\n\n" if rows else "")
    if skipped:
        text += f"nginx: not measured ({error_summary(skipped)}).\n\n"
    if not error and not paths:
        error = "the benchmark gave no figures"
    workers = figures.get("workers", {})
    each = ", ".join(f"{who} {workers[who] or '1 per core'}" for who in ("app", "proxy", "load") if who in workers)
    return text + failure(error) + prose(f"""
From `cargo bench -p sdsec-guest --bench overhead` (provider/guest/benches/overhead/): the
runtime in host mode, that is the enforcement code the guest runs, serving as threads of
the benchmark's process on loopback in front of a small HTTP application (a fixed JSON body),
against the same application direct and, when Debian's nginx is installed (`nginx-light`),
nginx configured for the same checks. "Full policy": bearer authentication, RBAC, rate limits
set never to refuse and the default audit, so every request goes through every check; "open
plan": the runtime with nothing to enforce. {figures.get('connections', '?')} keep-alive
connections with one request in flight each, for {figures.get('seconds', '?')} s per path and
round, the paths in alternation, {figures.get('rounds', '?')} round(s) summed; tokio worker
threads: {each}; all on the same {figures.get('cpus', '?')} cores, so the figures show what a request
costs in CPU more than what a machine of its own would serve. Ratios are of this run's figures.
Issue 14 aims at ≥ 0.6 × direct in requests/s, and at least nginx's requests/s with at most
its p99. The runtime in the guest, behind the VM's forwarded port, against the application
on the host, is in [section 2](#2-cost-of-protection); against the same guest's application
reached directly, in [section 5](#5-lean-images-sdsecs-kernel-against-debians).
""")


# ------------------------------------------------------------------------------------ compile

def compile_time(figures, error, measurement_seconds):
    figures = figures or {}
    parse, whole = figures.get("parse") or {}, figures.get("compile") or {}
    rows = []
    if parse or whole:
        rows = [
            "| stage | n | wall time per compile (ms) | CPU time per compile (ms) | ÷ parse (medians: wall, CPU) |",
            "|---|---|---|---|---|",
        ]
        for what, s in (("parse (YAML to the syntax tree)", parse),
                        ("whole compile (parse, resolve, check, lower to plans)", whole)):
            wall, cpu = s.get("wall_ms", []), s.get("cpu_ms", [])
            versus = ("baseline" if s is parse
                      else f"{vs(wall, parse.get('wall_ms', []))}, {vs(cpu, parse.get('cpu_ms', []))}")
            rows.append(f"| {what} | {len(wall)} | {cell(wall)} | {cell(cpu)} | {versus} |")
    if not error and not rows:
        error = "the benchmark gave no figures"
    doc = figures.get("document", {})
    per_node = DASH
    if whole.get("wall_ms") and doc.get("unikernels"):
        per_node = "%.1f µs" % (median(whole["wall_ms"]) * 1000 / doc["unikernels"])
    text = "\n".join(rows) + ("\n\n" if rows else "")
    return text + failure(error) + prose(f"""
From `cargo bench -p sdsec-sectosca --bench compile` (criterion, provider/sectosca/benches/compile.rs):
a generated SecTOSCA document of {doc.get('unikernels', '?')} unikernels on {doc.get('hypervisors', '?')}
hypervisors with {doc.get('policies', '?')} policies of every type ({doc.get('lines', '?')} lines,
{(doc.get('bytes') or 0) // 1024} KiB; {doc.get('merged_plans', '?')} plans merge several policies),
compiled whole and, as the baseline in the same run, only parsed. n: the samples criterion
measured per stage after its warm-up, in about {measurement_seconds} s per stage
(`--measurement-time`), each the mean time of one run over a batch of runs; CPU time is the thread's own, which other
processes on a shared machine inflate less than wall time. Per unikernel: {per_node} (wall,
median). Issue 14 aims at ≤ {figures.get('goal_ms', 50):.0f} ms for the whole compile on 2 cores.
""")
