#!/usr/bin/env bash
# The evaluation of issue 6, on this machine, through Terraform and the embedded QEMU backend:
# writes docs/benchmarks.md with medians and spreads (min–max, n) for
#   ondemand     time to a protected, serving instance: on-demand generation + boot, from a
#                pool of pre-built images (sdsec_pool warm = "image"), from a pool of paused
#                instances (warm = "paused")
#   protection   cost of protection: image size, boot time, throughput and p99 latency of the
#                example API behind its runtime in the guest, against the same API run
#                directly on the host
#   propagation  policy propagation to N running instances: in place, by replacement, by
#                replacement drawing from a pool of paused instances
#   density      memory per running and per paused instance, and how many fit here
#
# Usage: scripts/evaluate.sh [ondemand|protection|propagation|density]...   (default: all)
# The whole document is always rewritten; sections not selected say "not run".
# Environment (defaults in brackets):
#   EVAL_RUNS [5]           repetitions for the timings of ondemand and protection
#   EVAL_N ["1 5 10"]       instance counts for propagation
#   EVAL_PROP_RUNS [1]      policy changes timed per mode and N
#   EVAL_ONDEMAND_MODES ["none image paused"], EVAL_PROP_MODES ["inplace replace pool staged"]
#                           the parts of ondemand and propagation to run
#   EVAL_POOL_SIZE [2]      pool size for ondemand (propagation uses a pool of N)
#   EVAL_DENSITY_N [3]      running instances, and paused pool members, for density
#   EVAL_REQUESTS [2000]    requests per load test, EVAL_CONCURRENCY [4] connections,
#   EVAL_LOAD_RUNS [3]      load tests per target
#   EVAL_POLL_INTERVAL [0.1] seconds between two probes of one endpoint (propagation)
#   EVAL_OUT [docs/benchmarks.md], TERRAFORM [.venv/bin/terraform]
# Needs scripts/build.sh first (the release provider and the static example API).
# Progress goes to stderr. Whatever happens (failure, Ctrl-C), everything applied is
# destroyed and no VM is left behind.
set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
terraform="${TERRAFORM:-$root/.venv/bin/terraform}"
sdsec="$root/target/release/sdsec"
app="$root/target/x86_64-unknown-linux-gnu/guest/sdsec-example-api"
quickstart_policy="$root/examples/quickstart/policy.yaml"
doc="${EVAL_OUT:-$root/docs/benchmarks.md}"
runs="${EVAL_RUNS:-5}"
read -r -a ns <<<"${EVAL_N:-1 5 10}"
read -r -a ondemand_modes <<<"${EVAL_ONDEMAND_MODES:-none image paused}"
read -r -a prop_modes <<<"${EVAL_PROP_MODES:-inplace replace pool staged}"
prop_runs="${EVAL_PROP_RUNS:-1}"
pool_size="${EVAL_POOL_SIZE:-2}"
density_n="${EVAL_DENSITY_N:-3}"
requests="${EVAL_REQUESTS:-2000}"
concurrency="${EVAL_CONCURRENCY:-4}"
load_runs="${EVAL_LOAD_RUNS:-3}"
poll_interval="${EVAL_POLL_INTERVAL:-0.1}"
token="quickstart-token" # the quickstart's demo deployer token (roles deployer, reader)
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1

all_sections=(ondemand protection propagation density)
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
selected=()
for arg in "$@"; do
  case "$arg" in
    ondemand | protection | propagation | density) selected+=("$arg") ;;
    -h | --help) usage; exit 0 ;;
    *) echo "evaluate.sh: unknown section \`$arg\`" >&2; usage >&2; exit 2 ;;
  esac
done
[ "${#selected[@]}" -gt 0 ] || selected=("${all_sections[@]}")
for f in "$terraform" "$sdsec" "$root/target/release/terraform-provider-sdsec" "$app"; do
  [ -x "$f" ] || { echo "evaluate.sh: $f is missing; run scripts/setup.sh and scripts/build.sh" >&2; exit 1; }
done

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
tool=(python3 "$root/scripts/evaluate/evaltool.py")
py() { "${tool[@]}" "$@"; } # not for background jobs: $! must be python's own pid
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

work="$(mktemp -d "${TMPDIR:-/tmp}/sdsec-eval.XXXXXX")"
res="$work/results" # one file per measured quantity, one value per line
mkdir -p "$res"
: >"$work/pids" # background processes this script started (unprotected app, pollers)

# ------------------------------------------------------------------------------- teardown

teardown() { # DIR: destroy what Terraform applied there, then stop whatever its state dir still runs
  local d="${1%/}" pf pid
  [ -f "$d/main.tf" ] && [ ! -e "$d/.down" ] || return 0
  if [ -f "$d/terraform.tfstate" ]; then
    log "destroying $(basename "$d")"
    "$terraform" -chdir="$d" destroy -auto-approve -no-color -input=false -lock=false >>"$d/tf.log" 2>&1 ||
      log "warning: terraform destroy failed in $d; stopping its instances directly"
  fi
  if [ -d "$d/state/instances" ]; then
    "$sdsec" --state-dir "$d/state" stop --all >/dev/null 2>&1 || true
    for pf in "$d"/state/instances/*/qemu.pid; do
      [ -f "$pf" ] || continue
      pid="$(cat "$pf" 2>/dev/null || true)"
      # Only a QEMU of this run: its command line names this state directory.
      if [ -n "$pid" ] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF "$d/state"; then
        kill "$pid" 2>/dev/null || true
      fi
    done
  fi
  touch "$d/.down"
}

kill_ours() { # stop the background processes this script started that still run (pollers, the unprotected app)
  local pid
  while read -r pid; do
    if { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qE "evaltool\.py|$app"; then
      kill "$pid" 2>/dev/null || true
    fi
  done <"$work/pids"
  : >"$work/pids"
}

cleanup() {
  local rc=$? d
  set +e
  trap - EXIT
  trap "" HUP INT PIPE TERM # a second Ctrl-C does not cut the clean-up short
  log "cleaning up (destroying everything this run applied)"
  kill_ours
  for d in "$work"/*/; do teardown "$d"; done
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE # stderr piped into a reader that went away: still clean up
trap 'exit 143' TERM

cat >"$work/cli.tfrc" <<CFG
provider_installation {
  dev_overrides { "sdsec/sdsec" = "$root/target/release" }
  direct {}
}
CFG
export TF_CLI_CONFIG_FILE="$work/cli.tfrc"

# ------------------------------------------------------------------------------- plumbing

die() { printf '%s\n' "$*" >"$work/last_error"; log "error: $*"; exit 1; }

# try PREFIX FUNCTION ARGS...: runs one measurement in a subshell with errexit; afterwards
# every work dir named PREFIX* is torn down. Never fails: try_error holds why it did ("" if not).
try_error=""
try() {
  local prefix="$1" rc d
  shift
  : >"$work/last_error"
  set +e
  (
    set -e
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 141' PIPE
    trap 'exit 143' TERM
    "$@"
  )
  rc=$?
  set -e
  [ "$rc" -lt 128 ] || exit "$rc"
  kill_ours
  for d in "$work/$prefix"*/; do [ -d "$d" ] && teardown "$d"; done
  try_error=""
  if [ "$rc" -ne 0 ]; then
    try_error="$(head -c 400 "$work/last_error" | tr '\n|' '  ' | sed 's/ *$//')"
    try_error="${try_error:-exit status $rc, see the log on stderr}"
    log "FAILED ($prefix): $try_error"
  fi
  return 0
}

tf() { # DIR ARGS...: terraform in DIR, its output in DIR/tf.log
  local d="$1"
  shift
  if ! "$terraform" -chdir="$d" "$@" -no-color -input=false >>"$d/tf.log" 2>&1; then
    sed -n '/^Error: /,$p' "$d/tf.log" | head -n 25 >&2
    die "terraform $1 failed: $(grep -m1 '^Error: ' "$d/tf.log" | sed 's/^Error: //')"
  fi
}
apply() { tf "$1" apply -auto-approve; "$terraform" -chdir="$1" output -json >"$1/out.json"; }
out() { py get "$1/out.json" "$2"; } # DIR KEY: values of an output, one per line

newdir() { # NAME -> a fresh Terraform work dir
  local d="$work/$1"
  rm -rf "$d"
  mkdir -p "$d/state"
  echo "$d"
}

policy() { # DIR [evaltool policy options]: DIR/policy.yaml from the quickstart policy
  local d="$1"
  shift
  py policy --base "$quickstart_policy" --out "$d/policy.yaml" "$@"
  "$sdsec" check "$d/policy.yaml" >/dev/null 2>&1 || die "the generated policy does not check: $("$sdsec" check "$d/policy.yaml" 2>&1 | head -n 3)"
}

# config DIR COUNT [POOL_WARM(none|image|paused) POOL_SIZE USE_POOL(0|1) CREATE_BEFORE_DESTROY(0|1)]
config() {
  local d="$1" count="$2" warm="${3:-none}" size="${4:-0}" use_pool="${5:-0}" cbd="${6:-0}"
  local pool_block="" pool_attr="" lifecycle="" pool_outputs=""
  local application="{ path = \"$app\", args = [\"--listen\", \"0.0.0.0:8080\"], port = 8080 }"
  if [ "$warm" != none ]; then
    pool_block="resource \"sdsec_pool\" \"api\" {
  name        = \"api\"
  enforcement = sdsec_security_policy.api.enforcement[\"api\"]
  application = $application
  size        = $size
  warm        = \"$warm\"
}"
    pool_outputs='output "pool_ready" { value = sdsec_pool.api.ready }
output "pool_members" { value = sdsec_pool.api.members }'
    [ "$use_pool" = 1 ] && pool_attr="pool        = sdsec_pool.api.id"
  fi
  [ "$cbd" = 1 ] && lifecycle="lifecycle { create_before_destroy = true }"
  cat >"$d/main.tf" <<TF
terraform {
  required_providers {
    sdsec = { source = "sdsec/sdsec" }
  }
}
provider "sdsec" {
  state_dir = "$d/state"
}
resource "sdsec_security_policy" "api" {
  document = file("\${path.module}/policy.yaml")
}
$pool_block
resource "sdsec_unikernel" "api" {
  count       = $count
  name        = "api-\${count.index}"
  enforcement = sdsec_security_policy.api.enforcement["api"]
  application = $application
  $pool_attr
  $lifecycle
}
output "ids" { value = sdsec_unikernel.api[*].instance_id }
output "endpoints" { value = sdsec_unikernel.api[*].endpoint }
output "boot_ms" { value = sdsec_unikernel.api[*].boot_ms }
output "digests" { value = sdsec_unikernel.api[*].image_digest }
$pool_outputs
TF
}

note_accel() { # DIR: remember the accelerator an instance of DIR booted with
  local a
  a="$(cat "$1"/state/instances/*/instance.json 2>/dev/null | grep -o '"accel": *"[^"]*"' | head -n 1 | sed 's/.*"\([^"]*\)"$/\1/' || true)"
  [ -z "$a" ] || echo "$a" >"$work/accel"
}

fill_pool() { # DIR SIZE: apply until the pool holds SIZE ready members
  # The state's `ready` is only current after a refresh (members taken by unikernels in the
  # apply that wrote it still count), and an apply refreshes, then refills what is missing.
  local d="$1" size="$2" ready i
  for i in 1 2 3 4 5; do
    apply "$d"
    ready="$(out "$d" pool_ready)"
    [ "${ready%.*}" -ge "$size" ] 2>/dev/null && return 0
    log "pool: ${ready:-?}/$size ready after apply $i, applying again"
  done
  die "the pool did not refill to $size members"
}

add() { echo "$2" >>"$res/$1"; } # KEY VALUE
failed() { case "$1" in "not run"*) echo "$1" ;; *) echo "failed: $1" ;; esac; }
vals() { cat "$res/$1" 2>/dev/null || true; }
cell() { # KEY [DIGITS]: "median (min–max)" of the values
  # shellcheck disable=SC2046
  py stats --digits "${2:-2}" $(vals "$1")
}
n_of() { vals "$1" | grep -c . || true; }
median() { vals "$1" | sort -g | awk '{ a[NR] = $1 } END { if (NR) printf "%s", (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "–"; else if (a / b >= 100) printf "%.0f×", a / b; else printf "%.3g×", a / b }'; }

# ------------------------------------------------------------------- 1. ondemand

measure_start() { # DIR KEY WARM: one timed apply that adds the unikernel, until its first authenticated 200
  local d="$1" key="$2" warm="$3" t0 t_apply poller t200
  if [ "$warm" = none ]; then config "$d" 1; else config "$d" 1 "$warm" "$pool_size" 1; fi
  rm -f "$d/ids.want" "$d/first.json"
  t0="$EPOCHREALTIME"
  # Started with the apply: it probes every instance the state dir records, as soon as it is
  # recorded, so the first 200 is seen when it happens, not once Terraform has returned.
  "${tool[@]}" propagate --state-dir "$d/state" --token "$token" --t0 "$t0" --ids-file "$d/ids.want" \
    --out "$d/first.json" --interval 0.02 --timeout 600 &
  poller=$!
  echo "$poller" >>"$work/pids"
  apply "$d"
  t_apply="$(since "$t0")"
  out "$d" ids >"$d/ids.tmp" && mv "$d/ids.tmp" "$d/ids.want" # whole, or not there
  wait "$poller" || die "no authenticated 200 from the new instance ($(out "$d" endpoints))"
  t200="$(python3 -c 'import json, sys
p = json.load(open(sys.argv[1]))
print("%.3f" % p["seen"][p["wanted"][0]])' "$d/first.json")"
  add "$key.apply" "$t_apply"
  add "$key.t200" "$t200"
  add "$key.boot" "$(out "$d" boot_ms)"
  note_accel "$d"
  log "  $key: first 200 after ${t200} s, apply ${t_apply} s, boot_ms $(out "$d" boot_ms)"
}

ondemand_mode() { # WARM (none|image|paused)
  local warm="$1" key d i
  key="ondemand-$warm"
  d="$(newdir "$key")"
  policy "$d"
  if [ "$warm" = none ]; then
    config "$d" 0
    apply "$d"
  else
    log "creating the pool (warm = $warm, size $pool_size; not timed)"
    config "$d" 0 "$warm" "$pool_size" 1
    apply "$d"
  fi
  for i in $(seq "$runs"); do
    log "ondemand ($warm) run $i/$runs"
    if [ "$warm" = none ]; then
      # Drop the image the previous run generated, so that each run generates its own.
      "$sdsec" --state-dir "$d/state" images gc >/dev/null 2>&1
      if find "$d/state/images" -mindepth 1 -maxdepth 1 -name '[0-9a-f]*' 2>/dev/null | grep -q .; then
        die "sdsec images gc left an image in $d/state/images: the run would not generate its own"
      fi
    else
      fill_pool "$d" "$pool_size"
    fi
    measure_start "$d" "$key" "$warm"
    # Destroy the unikernel only; with a pool, this apply also refills it.
    if [ "$warm" = none ]; then config "$d" 0; else config "$d" 0 "$warm" "$pool_size" 1; fi
    apply "$d"
  done
}

section_ondemand() {
  local md="$work/ondemand.md" warm label err=()
  for warm in none image paused; do
    if [[ " ${ondemand_modes[*]} " == *" $warm "* ]]; then
      try "ondemand-$warm" ondemand_mode "$warm"
      err+=("$try_error")
    else
      err+=("not run (EVAL_ONDEMAND_MODES)")
    fi
  done
  {
    echo "| start from | n | \`terraform apply\` start → first authenticated 200 (s) | \`terraform apply\` (s) | provider \`boot_ms\` (ms) |"
    echo "|---|---|---|---|---|"
    local i=0
    for warm in none image paused; do
      case "$warm" in
        none) label="on-demand generation + boot (\`sdsec_unikernel\` alone)" ;;
        image) label="pool of pre-built images (\`warm = \"image\"\`, size $pool_size)" ;;
        paused) label="pool of paused instances (\`warm = \"paused\"\`, size $pool_size)" ;;
      esac
      if [ "$(n_of "ondemand-$warm.t200")" -gt 0 ]; then
        echo "| $label | $(n_of "ondemand-$warm.t200") | $(cell "ondemand-$warm.t200") | $(cell "ondemand-$warm.apply") | $(cell "ondemand-$warm.boot" 0) |"
      fi
      [ -z "${err[$i]}" ] || echo "| $label | – | $(failed "${err[$i]}") | | |"
      i=$((i + 1))
    done
    cat <<EOF

Cells are median (min–max) over n runs. Each run times one \`terraform apply\` that adds one
\`sdsec_unikernel\` (the quickstart policy, the static example API) to a configuration whose
policy (and pool) already exist, from the start of the apply until a GET \`/items\` through the
new instance's endpoint with the bearer token first answers 200 (a poller started with the
apply probes every instance recorded in the state directory every 20 ms, so it sees the
first 200 whether or not Terraform has returned yet). \`boot_ms\` is the provider's own figure:
from starting the VM to the runtime's health path answering. On demand, the image store is
emptied (\`sdsec images gc\`) before each run, so every run generates its image. With a pool,
the pool is created and filled by a separate apply (not timed), the unikernel names it with
\`pool = sdsec_pool.api.id\`, and after each run an apply with \`count = 0\` destroys the
unikernel and refills the pool before the next run.
EOF
  } >"$md"
}

# ----------------------------------------------------------------- 2. protection

protection_protected() {
  local d i endpoint digest hex dir f
  d="$(newdir protection-vm)"
  # The quickstart policy with its rate limit raised so far that it never refuses: the load
  # test then measures what enforcing costs, not the configured 50 requests/s.
  policy "$d" --rate 1000000
  config "$d" 0
  apply "$d"
  for i in $(seq "$runs"); do
    log "protection: boot $i/$runs of the protected API"
    measure_start "$d" protected none
    if [ "$i" -lt "$runs" ]; then
      config "$d" 0
      apply "$d"
    fi
  done
  endpoint="$(out "$d" endpoints)"
  digest="$(out "$d" digests)"
  hex="${digest#sha256:}"
  dir="$d/state/images/$hex"
  [ -d "$dir" ] || die "image directory $dir not found"
  for f in initramfs.cpio.zst kernel; do
    [ -f "$dir/$f" ] || die "$dir/$f not found"
  done
  add size.initramfs "$(stat -c %s "$dir/initramfs.cpio.zst")"
  add size.kernel "$(stat -c %s "$dir/kernel")"
  if command -v zstd >/dev/null; then add size.initramfs_raw "$(zstd -dc "$dir/initramfs.cpio.zst" | wc -c)"; fi
  for i in $(seq "$load_runs"); do
    log "protection: load test $i/$load_runs on the protected API ($requests requests, $concurrency connections)"
    py load --url "$endpoint" --token "$token" --requests "$requests" --concurrency "$concurrency" >>"$res/protected.load"
    tail -n 1 "$res/protected.load" >&2
  done
}

protection_unprotected() {
  local port pid i
  add size.app "$(stat -c %s "$app")"
  port="$(py freeport)"
  log "protection: start-up of the unprotected API ($runs times)"
  py startup --runs "$runs" --url "127.0.0.1:$port" -- "$app" --listen "127.0.0.1:$port" >>"$res/unprotected.start"
  "$app" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
  pid=$!
  echo "$pid" >>"$work/pids"
  py wait200 --url "127.0.0.1:$port" --t0 "$EPOCHREALTIME" --timeout 30 >/dev/null
  for i in $(seq "$load_runs"); do
    log "protection: load test $i/$load_runs on the unprotected API"
    py load --url "127.0.0.1:$port" --token "$token" --requests "$requests" --concurrency "$concurrency" >>"$res/unprotected.load"
    tail -n 1 "$res/unprotected.load" >&2
  done
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

load_field() { # WHO FIELD -> the field of each load run, one per line
  [ -f "$res/$1.load" ] || return 0
  python3 -c 'import json, sys
for line in open(sys.argv[1]):
    print(json.loads(line)[sys.argv[2]])' "$res/$1.load" "$2"
}

accel_note() {
  if [ "$(cat "$work/accel" 2>/dev/null || echo tcg)" = kvm ]; then
    echo "The guest runs under KVM."
  else
    echo "**The guest runs under TCG (software emulation, no KVM here)**, so the protected figures
include the cost of emulating the guest's CPU, not only that of the protection; with KVM the
gap would be far smaller."
  fi
}

section_protection() {
  local md="$work/protection.md" err_vm err_host who field
  try protection-vm protection_protected
  err_vm="$try_error"
  try protection-host protection_unprotected
  err_host="$try_error"
  for who in protected unprotected; do
    for field in rps p50_ms p99_ms ok; do load_field "$who" "$field" >"$res/$who.$field"; done
  done
  awk '{ printf "%.1f\n", $1 * 1000 }' "$res/unprotected.start" 2>/dev/null >"$res/unprotected.start_ms" || true
  local img_total="" raw=""
  if [ -s "$res/size.initramfs" ]; then
    img_total=$(($(vals size.initramfs) + $(vals size.kernel)))
  fi
  [ ! -s "$res/size.initramfs_raw" ] || raw=" ($(vals size.initramfs_raw | awk '{ printf "%.1f MiB", $1 / 1048576 }') uncompressed)"
  mib() { [ -z "$1" ] || awk -v b="$1" 'BEGIN { printf "%.1f MiB (%d bytes)", b / 1048576, b }'; }
  {
    echo "| | protected (sdsec unikernel, guest under $(cat "$work/accel" 2>/dev/null || echo tcg)) | unprotected (host process) | protected / unprotected |"
    echo "|---|---|---|---|"
    echo "| size: whole image | $(mib "$img_total") (initramfs + kernel) | executable: $(mib "$(vals size.app)") | $(ratio "$img_total" "$(vals size.app)") |"
    echo "| size: initramfs (runtime + application, zstd) | $(mib "$(vals size.initramfs)")$raw | $(mib "$(vals size.app)") | $(ratio "$(vals size.initramfs)" "$(vals size.app)") |"
    echo "| size: kernel (uncompressed vmlinux, the same for every image) | $(mib "$(vals size.kernel)") | – | |"
    echo "| start to serving (ms) | \`boot_ms\` $(cell protected.boot 0), n=$(n_of protected.boot) | spawn → first 200: $(cell unprotected.start_ms 1), n=$(n_of unprotected.start_ms) | $(ratio "$(median protected.boot)" "$(median unprotected.start_ms)") |"
    echo "| throughput (requests/s) | $(cell protected.rps 1), n=$(n_of protected.rps) | $(cell unprotected.rps 1), n=$(n_of unprotected.rps) | $(ratio "$(median protected.rps)" "$(median unprotected.rps)") |"
    echo "| p50 latency (ms) | $(cell protected.p50_ms) | $(cell unprotected.p50_ms) | $(ratio "$(median protected.p50_ms)" "$(median unprotected.p50_ms)") |"
    echo "| p99 latency (ms) | $(cell protected.p99_ms) | $(cell unprotected.p99_ms) | $(ratio "$(median protected.p99_ms)" "$(median unprotected.p99_ms)") |"
    echo "| answers 200 per load test | $(cell protected.ok 0) of $requests | $(cell unprotected.ok 0) of $requests | |"
    [ -z "$err_vm" ] || echo "| protected | failed: $err_vm | | |"
    [ -z "$err_host" ] || echo "| unprotected | | failed: $err_host | |"
    cat <<EOF

The same static example API, \`sdsec-example-api\`, measured twice. Protected: built into an
sdsec image with the quickstart policy (bearer authentication, RBAC, application firewall,
audit, strict hardening; only the rate limit raised to 1 000 000 requests/s so that it never
refuses and the figures show what enforcing costs) and booted by \`terraform apply\`; every
request goes through the forwarded endpoint and the runtime in the guest, with the bearer
token. Unprotected: the executable run directly on the host, \`--listen 127.0.0.1:PORT\`, sent
the same requests (the header is ignored). Cells are median (min–max) over n. Size: the
image's \`initramfs.cpio.zst\` and \`kernel\` in \`<state_dir>/images/<hex>/\` against the
executable alone. Start: the provider's \`boot_ms\` (VM start to the runtime's health path
answering, not counting the image build) against the time from spawning the process to its
first 200. Load: a closed-loop Python load generator (scripts/evaluate/evaltool.py: $concurrency
threads, one keep-alive connection each, $requests GET \`/items\` after 100 warm-up requests)
on the same $(nproc) cores, so the unprotected throughput is bounded by the client itself. $(accel_note)
EOF
  } >"$md"
}

# ---------------------------------------------------------------- 3. propagation

prop_change() { # DIR MODE N RUN: one timed policy change, until all N instances enforce it
  local d="$1" mode="$2" n="$3" r="$4" tok name t0 poller t_apply ids_before ids_after kept key
  key="prop-$mode-$n"
  name="eval-$mode-$n-$r"
  tok="eval-token-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  echo "$name=$tok" >>"$d/principals"
  local args=()
  while read -r p; do args+=(--principal "$p"); done <"$d/principals"
  if [ "$mode" != inplace ]; then
    # A hardening change (it needs a new image): flip the level between strict and baseline.
    if [ "$(cat "$d/level")" = strict ]; then echo baseline >"$d/level"; else echo strict >"$d/level"; fi
  fi
  policy "$d" "${args[@]}" --level "$(cat "$d/level")"
  ids_before="$(out "$d" ids | sort | tr '\n' ' ')"
  rm -f "$d/ids.want" "$d/prop.json"
  if [ "$mode" = staged ]; then
    # A staged rollout: the pool takes the new policy (and boots members of the new image)
    # first, timed apart; the timed apply then only swaps the instances.
    log "propagation ($mode, N=$n, run $r): warm the pool with the new image (-target=sdsec_pool.api)"
    t0="$EPOCHREALTIME"
    tf "$d" apply -auto-approve -target=sdsec_pool.api
    add "$key.warmup" "$(since "$t0")"
  fi
  log "propagation ($mode, N=$n, run $r): apply the change (new principal$([ "$mode" = inplace ] || echo ", hardening level $(cat "$d/level")"))"
  t0="$EPOCHREALTIME"
  "${tool[@]}" propagate --state-dir "$d/state" --token "$tok" --t0 "$t0" --ids-file "$d/ids.want" \
    --out "$d/prop.json" --interval "$poll_interval" --timeout 1800 &
  poller=$!
  echo "$poller" >>"$work/pids"
  apply "$d"
  t_apply="$(since "$t0")"
  out "$d" ids >"$d/ids.tmp" && mv "$d/ids.tmp" "$d/ids.want" # whole, or not there
  wait "$poller" || die "not every instance enforced the change (see $d/prop.json)"
  ids_after="$(out "$d" ids | sort | tr '\n' ' ')"
  kept="$(comm -12 <(tr ' ' '\n' <<<"$ids_before" | grep .) <(tr ' ' '\n' <<<"$ids_after" | grep .) | grep -c . || true)"
  python3 -c 'import json, sys
p = json.load(open(sys.argv[1]))
t = [p["seen"][i] for i in p["wanted"]]
print("%.3f %.3f" % (max(t), min(t)))
with open(sys.argv[2], "a") as each:
    each.writelines("%.3f\n" % x for x in t)' "$d/prop.json" "$res/$key.each" >"$d/prop.summary"
  add "$key.all" "$(cut -d' ' -f1 "$d/prop.summary")"
  add "$key.first" "$(cut -d' ' -f2 "$d/prop.summary")"
  add "$key.apply" "$t_apply"
  add "$key.kept" "$kept"
  note_accel "$d"
  log "  all $n enforcing after $(cut -d' ' -f1 "$d/prop.summary") s (first $(cut -d' ' -f2 "$d/prop.summary") s), apply $t_apply s, ids kept $kept/$n"
}

prop_mode() { # MODE (inplace|replace|pool|staged)
  local mode="$1" d n r
  d="$(newdir "prop-$mode")"
  : >"$d/principals"
  echo strict >"$d/level"
  policy "$d" --level strict
  for n in "${ns[@]}"; do
    log "propagation ($mode): scale to $n instance(s) (not timed)"
    case "$mode" in
      pool | staged) config "$d" "$n" paused "$n" 1 1 ;;
      *) config "$d" "$n" ;;
    esac
    apply "$d"
    for r in $(seq "$prop_runs"); do
      [ "$mode" = inplace ] || [ "$mode" = replace ] || fill_pool "$d" "$n"
      prop_change "$d" "$mode" "$n" "$r"
    done
  done
}

section_propagation() {
  local md="$work/propagation.md" mode label n key err=() i=0
  for mode in inplace replace pool staged; do
    if [[ " ${prop_modes[*]} " == *" $mode "* ]]; then
      try "prop-$mode" prop_mode "$mode"
      err+=("$try_error")
    else
      err+=("not run (EVAL_PROP_MODES)")
    fi
  done
  {
    echo "| mode | N | n | apply start → all N enforce (s) | → first enforces (s) | per instance (s) | \`terraform apply\` (s) | instance ids kept |"
    echo "|---|---|---|---|---|---|---|---|"
    for mode in inplace replace pool staged; do
      case "$mode" in
        inplace) label="in place (principal added)" ;;
        replace) label="replacement, no pool (principal + hardening level)" ;;
        pool) label="replacement from a paused pool (same change)" ;;
        staged) label="replacement from a pool warmed first (same change)" ;;
      esac
      for n in "${ns[@]}"; do
        key="prop-$mode-$n"
        [ "$(n_of "$key.all")" -gt 0 ] || continue
        echo "| $label | $n | $(n_of "$key.all") | $(cell "$key.all") | $(cell "$key.first") | $(cell "$key.each") | $(cell "$key.apply") | $(vals "$key.kept" | awk -v n="$n" '{ printf "%s%s/%s", (NR > 1 ? ", " : ""), $1, n }') |"
      done
      [ -z "${err[$i]}" ] || echo "| $label | – | – | $(failed "${err[$i]}") | | | | |"
      i=$((i + 1))
    done
    cat <<EOF

N instances of the example API run under the quickstart policy (hardening level strict).
One \`terraform apply\` then changes the policy document; the time runs from its start until
every one of the N instances the configuration ends with answers 200 to a GET \`/items\`
with the token of a principal that the change adds (the old policy answers 401 to it). A
poller watches every instance recorded in the state directory (including new ones while the
apply runs) and probes each every ${poll_interval} s on a fresh connection. "per instance" is
the time to each instance enforcing, over all instances and runs. In place: only a principal
is added, a runtime-reconfigurable change the provider pushes to the running instances
(their ids stay the same; if the column shows 0/N, the provider replaced them instead).
Replacement: the same new principal plus the Hardening \`level\` flipped between strict and
baseline, which needs a new image, so every instance is replaced (destroy, then create).
From a pool: the same change, the unikernels have \`pool = sdsec_pool.api.id\` and
\`create_before_destroy\`, the pool (\`warm = "paused"\`, size N) takes its enforcement from
the same policy, so the one apply updates the pool and replaces the instances from it. From a
pool warmed first: the same, as a staged rollout: \`terraform apply -target=sdsec_pool.api\`
first (the pool takes the new policy and boots N members of the new image; timed apart, not
in the row: $(for n in "${ns[@]}"; do [ "$(n_of "prop-staged-$n.warmup")" -gt 0 ] && printf 'N=%s %s s; ' "$n" "$(cell "prop-staged-$n.warmup")" || true; done)), then the timed
\`terraform apply\`, which only swaps the instances. The pool is refilled (not timed) before
each change. n: changes timed per row (EVAL_PROP_RUNS).
Scaling to N between rows is not timed.
EOF
  } >"$md"
}

# -------------------------------------------------------------------- 4. density

mem_of() { # DIR KEY IDS...: RSS and PSS of the QEMU of each instance
  local d="$1" key="$2" id pid line
  shift 2
  for id in "$@"; do
    pid="$(cat "$d/state/instances/$id/qemu.pid" 2>/dev/null || true)"
    if [ -z "$pid" ] || [ ! -d "/proc/$pid" ]; then die "no QEMU process for instance $id"; fi
    line="$(py mem "$pid")"
    add "$key.rss" "$(awk '{ printf "%.1f", $2 }' <<<"$line")"
    add "$key.pss" "$(awk '{ printf "%.1f", $3 }' <<<"$line")"
  done
}

density_running() {
  local d id endpoint
  d="$(newdir density)"
  policy "$d"
  log "density: boot $density_n running instance(s)"
  config "$d" "$density_n"
  apply "$d"
  note_accel "$d"
  for endpoint in $(out "$d" endpoints); do # warm them a little, as instances that served requests
    py load --url "$endpoint" --token "$token" --requests 50 --concurrency 1 --warmup 0 >/dev/null
  done
  sleep 5
  # shellcheck disable=SC2046
  mem_of "$d" running $(out "$d" ids)
}

density_paused() {
  local d="$work/density"
  log "density: add a pool of $density_n paused instance(s)"
  config "$d" "$density_n" paused "$density_n" 0
  apply "$d"
  fill_pool "$d" "$density_n"
  sleep 5
  # shellcheck disable=SC2046
  mem_of "$d" paused $(out "$d" pool_members)
}

section_density() {
  local md="$work/density.md" avail err_run err_paused who label
  avail="$(awk '/^MemAvailable:/ { printf "%.0f", $2 / 1024 }' /proc/meminfo)"
  echo "$avail" >"$res/memavailable"
  # The pool joins the running instances' work dir, so nothing is torn down between the two
  # (no work dir is named density-later*); both are torn down after.
  try density-later density_running
  err_run="$try_error"
  if [ -z "$err_run" ]; then
    try density-later density_paused
    err_paused="$try_error"
  else
    err_paused="not measured, as the running instances failed"
  fi
  teardown "$work/density"
  {
    echo "MemAvailable before booting anything: $avail MiB; guest memory per instance: 128 MiB (the quickstart node's \`memory_mb\`)."
    echo
    echo "| instance | n | QEMU RSS (MiB) | QEMU PSS (MiB) | PSS of all n (MiB) | fit in MemAvailable (estimate, by PSS) |"
    echo "|---|---|---|---|---|---|"
    for who in running paused; do
      label="$who"
      [ "$who" = running ] || label="paused (pool member, \`warm = \"paused\"\`)"
      if [ "$(n_of "$who.rss")" -gt 0 ]; then
        echo "| $label | $(n_of "$who.rss") | $(cell "$who.rss" 1) | $(cell "$who.pss" 1) | $(vals "$who.pss" | awk '{ s += $1 } END { printf "%.1f", s }') | $(awk -v a="$avail" -v p="$(median "$who.pss")" 'BEGIN { if (p > 0) printf "~%d", a / p; else print "–" }') |"
      fi
    done
    [ -z "$err_run" ] || echo "| running | – | failed: $err_run | | | |"
    [ -z "$err_paused" ] || echo "| paused | – | failed: $err_paused | | | |"
    cat <<EOF

$density_n instances of the example API under the quickstart policy, booted by Terraform and
each sent 50 authenticated requests, then a pool (\`warm = "paused"\`, size $density_n) added
beside them; 5 s later, for each instance's QEMU process (its pid from
\`<state_dir>/instances/<id>/qemu.pid\`), RSS from \`/proc/<pid>/status\` and PSS from
\`/proc/<pid>/smaps_rollup\` (PSS shares the pages QEMU processes have in common, such as the
QEMU binary and libraries, between them, so it is the fairer cost of one more instance).
Cells are median (min–max) over the n instances. "Fit" is MemAvailable divided by the
median PSS: an estimate from memory alone, assuming every instance touches as much memory as
these did. Running instances share $(nproc) cores under TCG, so CPU, not memory, limits how many
can serve at once; paused instances use no CPU.
EOF
  } >"$md"
}

# --------------------------------------------------------------------------- main

log "work dir $work; sections: ${selected[*]}"
for s in "${selected[@]}"; do
  log "=== $s"
  "section_$s"
done

# The document: every section, "not run" for those not selected.
titles=(
  "1. Time to a protected, serving instance"
  "2. Cost of protection"
  "3. Policy propagation"
  "4. Density"
)
accel="$(cat "$work/accel" 2>/dev/null || true)"
if [ -n "$accel" ]; then
  accel="$accel (the \`accel\` the instances recorded)"
elif ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
  accel="tcg (no vmx/svm)"
else
  accel="not observed (no instance booted in this run)"
fi
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
tmp_doc="$work/benchmarks.md"
{
  echo "# Benchmarks"
  echo
  echo "Written by \`scripts/evaluate.sh\` (sections run: ${selected[*]}); rerun it to refresh. Medians with"
  echo "their spread, median (min–max), and n, the number of samples."
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
  echo "| commit | \`$commit\` (provider binary built $(date -u -r "$root/target/release/terraform-provider-sdsec" '+%Y-%m-%d %H:%M UTC')) |"
  echo "| CPU | $(grep -m1 '^model name' /proc/cpuinfo | sed 's/^[^:]*: *//'), $(nproc) cores |"
  echo "| RAM | $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) |"
  echo "| kernel | $(uname -sr) |"
  echo "| QEMU | $(qemu-system-x86_64 --version 2>/dev/null | head -n 1 || echo "not found") |"
  echo "| accelerator | $accel |"
  echo "| Terraform | $("$terraform" version 2>/dev/null | head -n 1) |"
  echo "| load average at the end | $(cut -d' ' -f1-3 /proc/loadavg) |"
  for i in "${!all_sections[@]}"; do
    echo
    echo "## ${titles[$i]}"
    echo
    if [ -f "$work/${all_sections[$i]}.md" ]; then
      cat "$work/${all_sections[$i]}.md"
    else
      echo "Not run (\`scripts/evaluate.sh ${all_sections[$i]}\` runs it)."
    fi
  done
} >"$tmp_doc"
mkdir -p "$(dirname "$doc")"
cp "$tmp_doc" "$doc"
log "wrote $doc"
