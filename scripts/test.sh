#!/usr/bin/env bash
# The whole test suite: unit, golden, property and CLI tests, then the acceptance tests that
# drive a real Terraform CLI against the provider. Everything is built once, in release mode.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/setup.sh"
export PATH="$root/.venv/bin:$PATH"
export CHECKPOINT_DISABLE=1

# The evaluation's logic (scripts/evaluate/: statistics, rendering, parsing, clean-up); seconds, so first.
python3 -m unittest discover -s "$root/scripts/evaluate"

"$root/scripts/build.sh"
# The libvirt daemon, and a second one standing for another host, for the libvirt tests.
"$root/scripts/libvirt.sh" --second

# The README's main job, end to end, so that it keeps working.
"$root/scripts/quickstart.sh"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --release --workspace --locked 2>&1 | tee "$log"

# One closing line over every test binary (cargo prints one summary per binary, the last
# of which is often an empty doc-test run).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
