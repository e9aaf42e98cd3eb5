"""docs/guides/benchmarks.md, rendered from the figures of one run.

Pure functions: RESULTS maps a measured quantity ("ondemand-none.t200", "protected.rps", ...)
to its values in the order they were taken; an error is "" for a part that ran without
failing, else why it failed or was not run. Each section ends with a newline.
"""

from stats import DASH, cell, fit, kept, median, mib, ratio, total

SECTIONS = ("ondemand", "protection", "propagation", "density", "lean", "runtime", "compile")
TITLES = {
    "ondemand": "1. Time to a protected, serving instance",
    "protection": "2. Cost of protection",
    "propagation": "3. Policy propagation",
    "density": "4. Density",
    "lean": "5. Lean images: sdsec's kernel against Debian's",
    "runtime": "6. Runtime overhead on the host",
    "compile": "7. Compile time",
}
ONDEMAND_MODES = ("none", "image", "paused", "snapshot")
# The document is a guide of the Terraform registry layout (docs/guides/), so it opens with the
# front matter the registry reads, as the other guides do.
FRONT_MATTER = (
    "---",
    'page_title: "Benchmarks"',
    'subcategory: "Guides"',
    "description: |-",
    "  Figures from one run of the evaluation on one machine: time to a protected, serving instance on demand, from "
    "pools and from a snapshot, the cost of protection, policy propagation, density, boot, size and memory with "
    "sdsec's kernel and Debian's, runtime overhead and compile time, each beside its baseline from the same run.",
    "---",
    "",
)
PROP_MODES = ("inplace", "replace", "pool", "staged")


def failed(error):
    """The text of a failed row: "not run ..." as it is, anything else as "failed: ..."."""
    return error if error.startswith("not run") else "failed: " + error


def _v(results, key):
    return results.get(key, [])


def ondemand(results, errors, pool_size):
    """ERRORS: warm mode -> error."""
    labels = {
        "none": "on-demand generation + boot (`sdsec_unikernel` alone)",
        "image": f'pool of pre-built images (`warm = "image"`, size {pool_size})',
        "paused": f'pool of paused instances (`warm = "paused"`, size {pool_size})',
        "snapshot": f'pool of snapshot copies (`warm = "snapshot"`, size {pool_size})',
    }
    rows = [
        "| start from | n | `terraform apply` start → first authenticated 200 (s) | ÷ on demand (medians) "
        "| `terraform apply` (s) | provider `boot_ms` (ms) |",
        "|---|---|---|---|---|---|",
    ]
    baseline = median(_v(results, "ondemand-none.t200"))
    for warm in ONDEMAND_MODES:
        key, label = f"ondemand-{warm}", labels[warm]
        t200 = _v(results, key + ".t200")
        if t200:
            versus = "baseline" if warm == "none" else ratio(median(t200), baseline)
            rows.append(f"| {label} | {len(t200)} | {cell(t200)} | {versus} | {cell(_v(results, key + '.apply'))} "
                        f"| {cell(_v(results, key + '.boot'), 0)} |")
        if errors.get(warm):
            rows.append(f"| {label} | {DASH} | {failed(errors[warm])} | | | |")
    return "\n".join(rows) + """

Cells are median (min–max) over n runs. Each run times one `terraform apply` that adds one
`sdsec_unikernel` (the quickstart policy, the static example API) to a configuration whose
policy (and pool) already exist, from the start of the apply until a GET `/items` through the
new instance's endpoint with the bearer token first answers 200 (a poller started with the
apply probes every instance recorded in the state directory every 20 ms, so it sees the
first 200 whether or not Terraform has returned yet). "÷ on demand" is the row's median over
the on-demand row's, both from this run. `boot_ms` is the provider's own figure: from the
start of its create (generating the image, or taking the pool member, included) to the
runtime's health path answering. On demand, the image store is emptied (`sdsec images gc`)
before each run, so every run generates its image. With a pool, the pool is created and
filled by a separate apply (not timed), the unikernel names it with
`pool = sdsec_pool.api.id`, and after each run an apply with `count = 0` destroys the
unikernel and refills the pool before the next run. Taking a pre-built image boots it;
taking a paused instance resumes it; taking a snapshot member starts a copy of the VM the
pool saved once ready (verified against its digest, then given its own key, randomness,
clock and address before it serves: [snapshots.md](snapshots.md)).
"""


def accel_note(accel):
    if accel == "kvm":
        return "The guest runs under KVM."
    return """**The guest runs under TCG (software emulation, no KVM here)**, so the protected figures
include the cost of emulating the guest's CPU, not only that of the protection; with KVM the
gap would be far smaller."""


def protection(results, err_vm, err_host, accel, requests, concurrency, cores):
    """ACCEL: the accelerator the instances recorded, None if none did."""
    accel = accel or "tcg"
    def one(key):  # a size is taken once
        return (_v(results, key) or [None])[0]

    initramfs, kernel, app = (one("size." + k) for k in ("initramfs", "kernel", "app"))
    image = initramfs + kernel if initramfs is not None and kernel is not None else None

    def vs(key, digits):  # "median (min–max)" of a protected and of an unprotected figure, and their ratio
        p, u = _v(results, "protected." + key), _v(results, "unprotected." + key)
        return cell(p, digits), cell(u, digits), ratio(median(p), median(u))

    boot, start = _v(results, "protected.boot"), _v(results, "unprotected.start_ms")
    rps, p50, p99 = vs("rps", 1), vs("p50_ms", 2), vs("p99_ms", 2)
    rows = [
        f"| | protected (sdsec unikernel, guest under {accel}) | unprotected (host process) | protected / unprotected |",
        "|---|---|---|---|",
        f"| size: whole image | {mib(image)} (initramfs + kernel) | executable: {mib(app)} | {ratio(image, app)} |",
        f"| size: initramfs (`initramfs.cpio`: runtime + application, uncompressed) | {mib(initramfs)} | {mib(app)} "
        f"| {ratio(initramfs, app)} |",
        f"| size: kernel (sdsec's uncompressed `vmlinux`, stored once, shared by every image booting it) | {mib(kernel)} "
        f"| {DASH} | |",
        f"| start to serving (ms) | `boot_ms` {cell(boot, 0)}, n={len(boot)} | spawn → first 200: {cell(start, 1)}, "
        f"n={len(start)} | {ratio(median(boot), median(start))} |",
        f"| throughput (requests/s) | {rps[0]}, n={len(_v(results, 'protected.rps'))} | {rps[1]}, "
        f"n={len(_v(results, 'unprotected.rps'))} | {rps[2]} |",
        f"| p50 latency (ms) | {p50[0]} | {p50[1]} | {p50[2]} |",
        f"| p99 latency (ms) | {p99[0]} | {p99[1]} | {p99[2]} |",
        f"| answers 200 per load test | {cell(_v(results, 'protected.ok'), 0)} of {requests} "
        f"| {cell(_v(results, 'unprotected.ok'), 0)} of {requests} | |",
    ]
    if err_vm:
        rows.append(f"| protected | failed: {err_vm} | | |")
    if err_host:
        rows.append(f"| unprotected | | failed: {err_host} | |")
    return "\n".join(rows) + f"""

The same static example API, `sdsec-example-api`, measured twice. Protected: built into an
sdsec image with the quickstart policy (bearer authentication, RBAC, application firewall,
audit, strict hardening; only the rate limit raised to 1 000 000 requests/s so that it never
refuses and the figures show what enforcing costs) and booted by `terraform apply`; every
request goes through the forwarded endpoint and the runtime in the guest, with the bearer
token. Unprotected: the executable run directly on the host, `--listen 127.0.0.1:PORT`, sent
the same requests (the header is ignored). Cells are median (min–max) over n. Size: the
image's `initramfs.cpio` (in `<state_dir>/images/<hex>/`, beside its manifest and
`SHA256SUMS`) and the kernel its manifest names, which the store keeps once per digest as
`<state_dir>/images/kernels/<sha256 hex>` for every image that boots it (a second image with
the same kernel adds only its initramfs), against the executable alone. Start: the
provider's `boot_ms` (from the start of its create to the runtime's health path answering;
the first run generates the image, the others find it in the store) against the time from
spawning the process to its first 200. Load: a closed-loop Python load generator (scripts/evaluate/evaltool.py: {concurrency}
threads, one keep-alive connection each, {requests} GET `/items` after 100 warm-up requests)
on the same {cores} cores, so the unprotected throughput is bounded by the client itself. {accel_note(accel)}
"""


def propagation(results, errors, ns, poll_interval):
    """ERRORS: mode -> error; NS: the instance counts, in order; POLL_INTERVAL as configured."""
    labels = {
        "inplace": "in place (principal added)",
        "replace": "replacement, no pool (principal + hardening level)",
        "pool": "replacement from a paused pool (same change)",
        "staged": "replacement from a pool warmed first (same change)",
    }
    rows = [
        "| mode | N | n | apply start → all N enforce (s) | → first enforces (s) | per instance (s) | `terraform apply` (s) | instance ids kept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode in PROP_MODES:
        for n in ns:
            key = f"prop-{mode}-{n}"
            if not _v(results, key + ".all"):
                continue
            figures = " | ".join(cell(_v(results, f"{key}.{k}")) for k in ("all", "first", "each", "apply"))
            rows.append(f"| {labels[mode]} | {n} | {len(_v(results, key + '.all'))} | {figures} "
                        f"| {kept([int(k) for k in _v(results, key + '.kept')], n)} |")
        if errors.get(mode):
            rows.append(f"| {labels[mode]} | {DASH} | {DASH} | {failed(errors[mode])} | | | | |")
    warmups = "; ".join(f"N={n} {cell(_v(results, f'prop-staged-{n}.warmup'))} s"
                        for n in ns if _v(results, f"prop-staged-{n}.warmup"))
    return "\n".join(rows) + f"""

N instances of the example API run under the quickstart policy (hardening level strict).
One `terraform apply` then changes the policy document; the time runs from its start until
every one of the N instances the configuration ends with answers 200 to a GET `/items`
with the token of a principal that the change adds (the old policy answers 401 to it). A
poller watches every instance recorded in the state directory (including new ones while the
apply runs) and probes each every {poll_interval} s on a fresh connection. "per instance" is
the time to each instance enforcing, over all instances and runs. In place: only a principal
is added, a runtime-reconfigurable change the provider pushes to the running instances
(their ids stay the same; if the column shows 0/N, the provider replaced them instead).
Replacement: the same new principal plus the Hardening `level` flipped between strict and
baseline, which needs a new image, so every instance is replaced (destroy, then create).
From a pool: the same change, the unikernels have `pool = sdsec_pool.api.id` and
`create_before_destroy`, the pool (`warm = "paused"`, size N) takes its enforcement from
the same policy, so the one apply updates the pool and replaces the instances from it. From a
pool warmed first: the same, as a staged rollout: `terraform apply -target=sdsec_pool.api`
first (the pool takes the new policy and boots N members of the new image; timed apart, not
in the row: {warmups}), then the timed
`terraform apply`, which only swaps the instances. The pool is refilled (not timed) before
each change. n: changes timed per row (EVAL_PROP_RUNS).
Scaling to N between rows is not timed.
"""


def density(results, available_mib, err_running, err_paused, density_n, cores):
    rows = [
        f"MemAvailable before booting anything: {available_mib} MiB; guest memory per instance: 128 MiB "
        "(the quickstart node's `memory_mb`).",
        "",
        "| instance | n | QEMU RSS (MiB) | QEMU PSS (MiB) | PSS of all n (MiB) | fit in MemAvailable (estimate, by PSS) |",
        "|---|---|---|---|---|---|",
    ]
    for who, label in (("running", "running"), ("paused", 'paused (pool member, `warm = "paused"`)')):
        rss, pss = _v(results, who + ".rss"), _v(results, who + ".pss")
        if rss:
            rows.append(f"| {label} | {len(rss)} | {cell(rss, 1)} | {cell(pss, 1)} | {total(pss)} "
                        f"| {fit(available_mib, pss)} |")
    if err_running:
        rows.append(f"| running | {DASH} | failed: {err_running} | | | |")
    if err_paused:
        rows.append(f"| paused | {DASH} | failed: {err_paused} | | | |")
    return "\n".join(rows) + f"""

{density_n} instances of the example API under the quickstart policy, booted by Terraform and
each sent 50 authenticated requests, then a pool (`warm = "paused"`, size {density_n}) added
beside them; 5 s later, for each instance's QEMU process (its pid from
`<state_dir>/instances/<id>/qemu.pid`), RSS from `/proc/<pid>/status` and PSS from
`/proc/<pid>/smaps_rollup` (PSS shares the pages QEMU processes have in common, such as the
QEMU binary and libraries, between them, so it is the fairer cost of one more instance).
Cells are median (min–max) over the n instances. "Fit" is MemAvailable divided by the
median PSS: an estimate from memory alone, assuming every instance touches as much memory as
these did. Running instances share {cores} cores under TCG, so CPU, not memory, limits how many
can serve at once; paused instances use no CPU.
"""


def accel_line(recorded, has_virtualisation):
    """The header's accelerator: what the instances recorded, else why there is nothing."""
    if recorded:
        return f"{recorded} (the `accel` the instances recorded)"
    if not has_virtualisation:
        return "tcg (no vmx/svm)"
    return "not observed (no instance booted in this run)"


def document(selected, machine, sections):
    """The whole document. SELECTED: the sections run, as asked; MACHINE: (name, value) rows
    of the header table; SECTIONS: section -> its text, absent for those not run."""
    lines = [
        *FRONT_MATTER,
        "# Benchmarks",
        "",
        f"Written by `scripts/evaluate.sh` (sections run: {' '.join(selected)}); rerun it to refresh. Medians with",
        "their spread, median (min–max), and n, the number of samples. Networking figures (the bridge",
        "against QEMU's user network) are in [networking.md](networking.md#figures-the-bridge-against-qemus-user-network),",
        "from `cargo bench -p sdsec-engine --bench network`.",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value} |" for name, value in machine]
    text = "\n".join(lines) + "\n"
    for s in SECTIONS:
        body = sections.get(s)
        if body is None:
            body = f"Not run (`scripts/evaluate.sh {s}` runs it).\n"
        text += f"\n## {TITLES[s]}\n\n" + body
    return text
