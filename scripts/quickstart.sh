#!/usr/bin/env bash
# The main job, end to end on the embedded default: build the provider, then a real
# `terraform apply` of examples/quickstart, show what it enforces, and destroy it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/setup.sh"
export PATH="$root/.venv/bin:$PATH"
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1

echo "==> building (release)"
cargo build --release --locked --bin terraform-provider-sdsec --bin sdsec

# Work on a copy so the repository stays clean; Terraform finds the provider through a
# development override that points at the build.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r examples/quickstart/. "$work/"
cat > "$work/cli.tfrc" <<CFG
provider_installation {
  dev_overrides {
    "sdsec/sdsec" = "$root/target/release"
  }
  direct {}
}
CFG
export TF_CLI_CONFIG_FILE="$work/cli.tfrc"
tf() { terraform -chdir="$work" "$@"; }

echo "==> terraform apply"
tf apply -auto-approve -no-color
echo "==> what the policy enforces"
tf output -raw summary
echo "==> the same policy at threat level high: only the rate limit changes, in place"
tf plan -no-color -var threat_level=high | grep -E "in-place|requests_per_second|Plan:" || true
echo "==> terraform destroy"
tf destroy -auto-approve -no-color
echo "==> quickstart done"
