#!/usr/bin/env bash
# Protected unikernels through Terraform, on this machine, in one run: `terraform apply`
# time for 1 and for 5 `sdsec_unikernel`s (the quickstart policy and the example API),
# boot-to-ready per instance (the provider's `boot_ms`) and the resident memory of each
# instance's QEMU, per backend (the embedded QEMU backend and libvirt), then destroy. The
# baseline in the same run: `terraform apply` of the policy alone (what Terraform and the
# compile cost without any VM).
#
# Usage: scripts/bench-unikernel.sh [backends...]   (default: qemu libvirt)
# Needs scripts/build.sh (and scripts/libvirt.sh for libvirt) first.
set -euo pipefail
export LC_ALL=C
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$#" -gt 0 ]; then backends=("$@"); else backends=(qemu libvirt); fi
terraform="${TERRAFORM:-$root/.venv/bin/terraform}"
app="$root/target/x86_64-unknown-linux-gnu/guest/sdsec-example-api"
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/cli.tfrc" <<CFG
provider_installation {
  dev_overrides { "sdsec/sdsec" = "$root/target/release" }
  direct {}
}
CFG
export TF_CLI_CONFIG_FILE="$work/cli.tfrc"
cp "$root/examples/quickstart/policy.yaml" "$work/policy.yaml"

config() { # BACKEND COUNT
  local hv='hypervisor = "qemu"'
  [ "$1" = libvirt ] && hv='hypervisor = "libvirt"'
  cat > "$work/main.tf" <<TF
terraform {
  required_providers {
    sdsec = { source = "sdsec/sdsec" }
  }
}
provider "sdsec" {
  state_dir = "$work/state-$1"
  $hv
}
resource "sdsec_security_policy" "api" {
  document = file("\${path.module}/policy.yaml")
}
resource "sdsec_unikernel" "api" {
  count       = $2
  name        = "api-\${count.index}"
  enforcement = sdsec_security_policy.api.enforcement["api"]
  application = { path = "$app", args = ["--listen", "0.0.0.0:8080"], port = 8080 }
}
output "boot_ms" { value = sdsec_unikernel.api[*].boot_ms }
output "ids" { value = sdsec_unikernel.api[*].instance_id }
TF
}

seconds() { local t0=$EPOCHREALTIME; "$@" >/dev/null; awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
rss_mib() { # INSTANCE_ID -> MiB of the QEMU process naming it
  local pid
  for pid in $(pgrep -f "$1" || true); do
    awk '/^VmRSS:/ { printf "%.1f\n", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null
  done | sort -n | tail -n 1
}

rows=()
for backend in "${backends[@]}"; do
  config "$backend" 0
  base="$(seconds "$terraform" -chdir="$work" apply -auto-approve -no-color)"
  for n in 1 5; do
    config "$backend" "$n"
    t="$(seconds "$terraform" -chdir="$work" apply -auto-approve -no-color)"
    boots="$("$terraform" -chdir="$work" output -json boot_ms | tr -d '[]' | tr ',' ' ')"
    ids="$("$terraform" -chdir="$work" output -json ids | tr -d '[]"' | tr ',' ' ')"
    mems=""
    for id in $ids; do mems+="$(rss_mib "$id") "; done
    med() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ a[NR] = $1 } END { printf "%s", a[int((NR + 1) / 2)] }'; }
    rows+=("| $backend | $n | $t s | $base s | $(med <<<"$boots") ms | $(med <<<"$mems") MiB |")
    config "$backend" 0
    "$terraform" -chdir="$work" apply -auto-approve -no-color >/dev/null
  done
  "$terraform" -chdir="$work" destroy -auto-approve -no-color >/dev/null
  rm -f "$work/terraform.tfstate" "$work/terraform.tfstate.backup"
done

accel="tcg"; grep -qwE 'vmx|svm' /proc/cpuinfo && [ ! -e /sys/module/kvm_pvm ] && accel="kvm (if /dev/kvm is usable)"
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), accelerator $accel, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| backend | unikernels | terraform apply | baseline (policy only) | boot to ready (median) | QEMU RSS per instance (median) |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
