#!/usr/bin/env bash
# Builds everything once, in release mode: the provider and the `sdsec` command line, the
# enforcement runtime and the example application as static executables (they go into
# images), and fetches the kernel images boot into the cache unless it is there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# The libvirt backend links libvirt: its headers and pkg-config are build dependencies.
missing=()
for pkg in libvirt-dev pkg-config; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing ${missing[*]} (build dependencies)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

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
  target/release/sdsec kernel fetch
fi
