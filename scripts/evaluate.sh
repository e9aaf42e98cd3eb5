#!/usr/bin/env bash
# The evaluation of issues 6 and 14, on this machine, through Terraform and the embedded QEMU
# backend: time to a protected, serving instance (on demand, from pools, from a snapshot), the
# cost of protection, policy propagation to N instances, and density; and through cargo
# benchmarks: boot, size and memory with sdsec's kernel against Debian's, the runtime's
# overhead, compile time. Written to docs/guides/benchmarks.md.
#
# Usage: scripts/evaluate.sh [ondemand|protection|propagation|density|lean|runtime|compile]...
#        (default: all)
# `scripts/evaluate.sh --help` lists the environment variables (EVAL_RUNS, EVAL_N, EVAL_OUT, ...)
# and their defaults. Needs scripts/build.sh first. Whatever happens (failure, Ctrl-C),
# everything applied is destroyed and no VM is left behind.
#
# A launcher: the evaluation is the Python program in scripts/evaluate/ (evaluate.py; standard
# library only), whose unit tests scripts/test.sh runs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! command -v python3 >/dev/null; then
  echo "evaluate.sh: python3 is missing; install Python 3.11 or later" >&2
  exit 1
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "evaluate.sh: $(python3 --version 2>&1) is too old; the evaluation needs Python 3.11 or later" >&2
  exit 1
fi
# The program checks the build (terraform, the release provider and CLI, the example API) after
# reading its arguments, so that --help works before any build.
exec python3 "$root/scripts/evaluate/evaluate.py" "$@"
