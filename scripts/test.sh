#!/usr/bin/env bash
# The whole test suite: unit, golden, property and CLI tests, then the acceptance tests that
# drive a real Terraform CLI against the provider. Everything is built once, in release mode.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/setup.sh"
export PATH="$root/.venv/bin:$PATH"
export CHECKPOINT_DISABLE=1

cargo build --release --workspace --locked

# The README's main job, end to end, so that it keeps working.
"$root/scripts/quickstart.sh"

cargo test --release --workspace --locked
