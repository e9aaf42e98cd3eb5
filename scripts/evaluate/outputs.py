"""Parsing of what the evaluation reads: command outputs, state files and /proc.

Pure functions over text, so that each is tested without Terraform, QEMU or a Linux /proc.
"""

import json
import re


def output_values(text, key):
    """The values of one output of `terraform output -json`: a list, [] when it is absent or null."""
    value = json.loads(text).get(key, {}).get("value")
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def accel_of(instance_json):
    """The accelerator an instance recorded in its instance.json ("tcg", "kvm"), or None."""
    try:
        accel = json.loads(instance_json).get("accel")
    except ValueError:
        return None  # being written
    return accel if isinstance(accel, str) and accel else None


def proc_kib(text, field):
    """The value in KiB of a "Field:   123 kB" line of /proc/<pid>/status, smaps_rollup or
    /proc/meminfo, or None."""
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def rss_pss_mib(status, smaps_rollup):
    """(RSS, PSS) in MiB of one process, from its /proc status and smaps_rollup texts."""
    rss, pss = proc_kib(status, "VmRSS"), proc_kib(smaps_rollup, "Pss")
    return (None if rss is None else rss / 1024, None if pss is None else pss / 1024)


def cpu_model(cpuinfo):
    """The first "model name" of /proc/cpuinfo, "" if there is none."""
    m = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, flags=re.M)
    return m.group(1).strip() if m else ""


def has_virtualisation(cpuinfo):
    """Whether /proc/cpuinfo lists the vmx or svm flag (KVM could run here)."""
    return re.search(r"\b(vmx|svm)\b", cpuinfo) is not None


def loadavg(text):
    """The three load averages of /proc/loadavg."""
    return " ".join(text.split()[:3])


def terraform_error(log, lines=25):
    """From the output of one failed terraform command: the lines from its first "Error: " on
    (at most LINES), to show, and that error's message alone, to report."""
    all_lines = log.splitlines()
    for i, line in enumerate(all_lines):
        if line.startswith("Error: "):
            return "\n".join(all_lines[i:i + lines]), line[len("Error: "):]
    return "", ""


def load_result(line):
    """The figures of one `evaltool.py load` run (its JSON line)."""
    r = json.loads(line)
    return {k: float(r[k]) for k in ("rps", "p50_ms", "p99_ms", "ok")}


def startup_seconds(text):
    """The seconds of each run `evaltool.py startup` printed, one a line."""
    return [float(x) for x in text.split()]


def enforce_times(propagate_json):
    """The seconds to each wanted instance answering 200, from `evaltool.py propagate --out`,
    in the order of the wanted ids. Raises ValueError if one was never seen."""
    p = json.loads(propagate_json)
    missing = [w for w in p["wanted"] if w not in p["seen"]]
    if missing or not p["wanted"]:
        raise ValueError("no time for instance(s) %s" % (", ".join(missing) or "(none wanted)"))
    return [float(p["seen"][w]) for w in p["wanted"]]


def started_by_us(cmdline, state_dir):
    """Whether a process whose /proc/<pid>/cmdline is CMDLINE (NUL-separated bytes) is a QEMU
    of this run: its command line names our state directory."""
    return state_dir in cmdline.replace(b"\0", b" ").decode(errors="replace")


def bench_failure(log, rc):
    """Why a `cargo bench` failed, from its output LOG (stdout and stderr) and exit status RC:
    the message of the benchmark's panic, else cargo's first error, else the status."""
    lines = log.splitlines()
    for i in range(len(lines) - 1, -1, -1):  # the last panic: the one that ended the run
        line = lines[i]
        if "panicked at " not in line:
            continue
        m = re.search(r"panicked at '(.*)', \S+$", line)  # Rust before 1.73: the message inline
        if m:
            return m.group(1)
        if i + 1 < len(lines) and lines[i + 1].strip():
            return lines[i + 1].strip()
        return line.strip()
    for line in lines:
        if re.match(r"error(\[E\d+\])?: ", line):
            return line.strip()
    return f"exit status {rc}"


def bench_summary(text, bench):
    """The JSON a benchmark wrote to SDSEC_BENCH_JSON, checked to be BENCH's (a dict)."""
    figures = json.loads(text)
    if not isinstance(figures, dict) or figures.get("bench") != bench:
        raise ValueError(f"not the figures of the {bench} benchmark")
    return figures


def error_summary(text, limit=400):
    """A failure's text as it goes into a table cell: one line, no "|", at most LIMIT chars."""
    return re.sub(r"[\n|]", " ", text[:limit]).rstrip()
