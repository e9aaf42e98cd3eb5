#!/usr/bin/env bash
# Builds the release artifacts into dist/, as a Terraform registry takes them and as
# .goreleaser.yml describes them (goreleaser itself cannot be installed on these machines):
#
#   terraform-provider-sdsec_<version>_linux_amd64.zip   the provider (terraform-provider-sdsec_v<version>),
#                                                        the `sdsec` command line, the static enforcement
#                                                        runtime (sdsec-guest, found beside the provider),
#                                                        sdsec's kernel under kernels/ with its license and
#                                                        where its source is, LICENSE
#   terraform-provider-sdsec_<version>_manifest.json     the plugin protocol (6.0)
#   terraform-provider-sdsec_<version>_SHA256SUMS        the zip and the manifest
#   terraform-provider-sdsec_<version>_SHA256SUMS.sig    with SDSEC_SIGNING_KEY: a detached GPG signature
#
# Usage: scripts/release.sh [--no-build] [--version V] [--out DIR]
#        scripts/release.sh --no-build --stage-extras DIR
#   --no-build          package what scripts/build.sh built (fails when something is missing)
#   --version V         the version the release is tagged with: refused unless it is the
#                       workspace's (Cargo.toml), which the binaries report
#   --out DIR           where the artifacts go (default: dist/; files of earlier releases there go)
#   --stage-extras DIR  only put what goes into the zip besides the two Rust executables
#                       into DIR: top/ (runtime, LICENSE), kernels/sdsec/ (kernel, its license
#                       and source notice); .goreleaser.yml's before hook
# Environment: SDSEC_SIGNING_KEY (a GPG key id; GNUPGHOME as gpg reads it).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
say() { echo "release: $*" >&2; }
die() { say "error: $*"; exit 1; }

build=1
version=
out="$root/dist"
extras=
while [ "$#" -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --version) version="${2:?--version needs a value}"; shift ;;
    --out) out="${2:?--out needs a directory}"; shift ;;
    --stage-extras) extras="${2:?--stage-extras needs a directory}"; shift ;;
    *) die "unknown argument $1 (see the usage at the top of $0)" ;;
  esac
  shift
done
# Paths given are the caller's: made absolute before moving to the repository.
[ -z "$extras" ] || extras="$(realpath -m "$extras")"
out="$(realpath -m "$out")"
cd "$root"
cargo_version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
version="${version:-$cargo_version}"
[ "$version" = "$cargo_version" ] ||
  die "the release is $version but the binaries say $cargo_version: set the workspace's version in Cargo.toml"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]] || die "version \`$version\` is not semantic (1.2.3)"

provider=target/release/terraform-provider-sdsec
cli=target/release/sdsec
runtime=target/x86_64-unknown-linux-gnu/guest/sdsec-guest
if [ "$build" = 1 ]; then
  scripts/build.sh
fi
for f in "$cli" "$runtime"; do
  [ -x "$f" ] || die "$f is missing: run scripts/build.sh (or drop --no-build)"
done
kernel_image="$("$cli" kernel show --kernel sdsec | sed -n 's/^image: *//p')" ||
  die "sdsec's kernel is not built: run \`$cli kernel build\` (scripts/build.sh does)"
kernel_dir="$(dirname "$kernel_image")"
[ -f "$kernel_dir/kernel.json" ] || die "sdsec's kernel is not built: run \`$cli kernel build\` (scripts/build.sh does)"

# What the zip holds besides the provider and the command line: files at its top into
# directory $1, and sdsec's kernel with its license and source notice into $2/kernels/sdsec/
# (the provider finds it by its record, whatever the directory's name).
stage_extras() {
  local top="$1" kernels="$2/kernels/sdsec"
  mkdir -p "$top" "$kernels"
  install -m 0755 "$runtime" "$top/sdsec-guest"
  install -m 0644 LICENSE "$top/LICENSE"
  for f in kernel.json config vmlinux; do install -m 0644 "$kernel_dir/$f" "$kernels/$f"; done
  install -m 0644 /usr/share/common-licenses/GPL-2 "$kernels/COPYING"
  # With Debian's source, what makes the corresponding source complete: sdsec's
  # configuration fragment and the patches `sdsec kernel build` applies.
  mkdir -p "$kernels/source/patches"
  install -m 0644 provider/image/kernel/sdsec.config "$kernels/source/sdsec.config"
  install -m 0644 provider/image/kernel/patches/*.patch "$kernels/source/patches/"
  python3 - "$kernel_dir/kernel.json" >"$kernels/SOURCE.md" <<'PY'
import json, sys
k = json.load(open(sys.argv[1]))
print(f"""# sdsec's kernel

`vmlinux` is Linux {k["release"]}, built by `sdsec kernel build` from Debian's `{k["package"]}`
package, version {k["package_version"]}, with the patches in `source/patches/` applied and
the configuration in `config` (made from Debian's with sdsec's fragment, `source/sdsec.config`,
digest {k["config_digest"]}). Linux is free software under the GNU General Public License,
version 2 (`COPYING`), with the Linux-syscall-note exception.

Its corresponding source is Debian's `linux` source package, version {k["package_version"]}
(`apt-get source linux={k["package_version"]}` on Debian 12, or
https://snapshot.debian.org/package/linux/{k["package_version"]}/), with the patches and the
configuration here. `sdsec kernel build` on a Debian 12 host with that version builds the same
kernel.""")
PY
}

if [ -n "$extras" ]; then
  stage_extras "$extras/top" "$extras"
  say "staged the runtime, the kernel and the licenses in $extras"
  exit 0
fi
[ -x "$provider" ] || die "$provider is missing: run scripts/build.sh (or drop --no-build)"

# Only linux_amd64: the runtime and the kernel are x86-64 (the guest is QEMU's microvm).
name="terraform-provider-sdsec_${version}"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
install -s -m 0755 "$provider" "$stage/terraform-provider-sdsec_v${version}"
install -s -m 0755 "$cli" "$stage/sdsec"
stage_extras "$stage" "$stage"

mkdir -p "$out"
rm -f "$out"/terraform-provider-sdsec_*
zip="$out/${name}_linux_amd64.zip"
# Entries sorted, with a fixed time: the same inputs give the same zip (and lock-file hash).
python3 - "$stage" "$zip" <<'PY'
import os, sys, zipfile
stage, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    for dirpath, dirs, files in sorted(os.walk(stage)):
        dirs.sort()
        for f in sorted(files):
            path = os.path.join(dirpath, f)
            info = zipfile.ZipInfo(os.path.relpath(path, stage), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (os.stat(path).st_mode & 0o777 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as src:
                z.writestr(info, src.read(), compresslevel=9)
PY
install -m 0644 terraform-registry-manifest.json "$out/${name}_manifest.json"
(cd "$out" && sha256sum "${name}_linux_amd64.zip" "${name}_manifest.json" >"${name}_SHA256SUMS")
if [ -n "${SDSEC_SIGNING_KEY:-}" ]; then
  # The Terraform registry takes RSA and DSA keys only (gpg's algorithms 1 and 17).
  algorithm="$(gpg --batch --with-colons --list-keys "$SDSEC_SIGNING_KEY" | awk -F: '$1 == "pub" { print $4; exit }')"
  case "$algorithm" in
    1 | 17) ;;
    *) say "warning: key $SDSEC_SIGNING_KEY is not RSA or DSA (algorithm $algorithm): the Terraform registry refuses it" ;;
  esac
  gpg --batch --yes --local-user "$SDSEC_SIGNING_KEY" --detach-sign \
    --output "$out/${name}_SHA256SUMS.sig" "$out/${name}_SHA256SUMS"
  say "signed ${name}_SHA256SUMS with $SDSEC_SIGNING_KEY"
else
  say "unsigned (set SDSEC_SIGNING_KEY to a GPG key id to sign ${name}_SHA256SUMS)"
fi
say "wrote $(cd "$out" && ls | tr '\n' ' ')into $out"
