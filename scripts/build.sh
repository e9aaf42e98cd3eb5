#!/usr/bin/env bash
# Builds everything once, in release mode: the provider and the `sdsec` command line, the
# enforcement runtime and the example application as static executables (they go into
# images), and fetches the kernel images boot into the cache unless it is there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Debian packages (libvirt-dev and pkg-config for the libvirt backend, QEMU) and the venv.
"$root/scripts/setup.sh"

echo "==> building the provider and the command line (release)"
cargo build --release --workspace --locked

# Static executables need the target given explicitly: with it, RUSTFLAGS reach only the
# target's crates, not build scripts and proc macros (which cannot be static). The guest
# profile (Cargo.toml) keeps them small; they land in target/x86_64-unknown-linux-gnu/guest.
echo "==> building the runtime and the example application (static)"
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --profile guest --locked --target x86_64-unknown-linux-gnu -p sdsec-guest -p sdsec-example-api

if ! target/release/sdsec kernel show >/dev/null 2>&1; then
  echo "==> fetching the kernel (Debian's linux-image-cloud-amd64, not installed on the host)"
  # apt-get download needs current package lists: old ones name versions the archive dropped.
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  target/release/sdsec kernel fetch
fi
