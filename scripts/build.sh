#!/usr/bin/env bash
# Builds everything once, in release mode: the provider and the `sdsec` command line, the
# enforcement runtime and the example application as static executables (they go into
# images), and sdsec's kernel (a few minutes, once; reused from the cache after) and
# Debian's cloud kernel (the alternative `kernel = "debian-cloud"`) unless they are cached.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Debian packages (QEMU, the kernel's build tools) and the venv.
"$root/scripts/setup.sh"

echo "==> building the provider and the command line (release)"
cargo build --release --workspace --locked

# Static executables need the target given explicitly: with it, RUSTFLAGS reach only the
# target's crates, not build scripts and proc macros (which cannot be static). The guest
# profile (Cargo.toml) keeps them small; they land in target/x86_64-unknown-linux-gnu/guest.
echo "==> building the runtime and the example application (static)"
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --profile guest --locked --target x86_64-unknown-linux-gnu -p sdsec-guest -p sdsec-example-api

# apt-get download needs current package lists: old ones name versions the archive dropped.
lists_updated=
update_lists() {
  if [ -z "$lists_updated" ]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq; lists_updated=1; fi
}
if ! target/release/sdsec kernel show --kernel sdsec >/dev/null 2>&1; then
  echo "==> building sdsec's kernel (Debian's linux-source-6.1 and provider/image/kernel/sdsec.config)"
  update_lists
  target/release/sdsec kernel build
fi
if ! target/release/sdsec kernel show --kernel debian-cloud >/dev/null 2>&1; then
  echo "==> fetching Debian's cloud kernel (linux-image-cloud-amd64, not installed on the host)"
  update_lists
  target/release/sdsec kernel fetch
fi
