#!/usr/bin/env bash
# Makes a libvirt daemon answer on qemu:///system for sdsec's libvirt backend and its
# tests, on a Debian 12 machine that runs as root without systemd (a container).
# Idempotent: packages, configuration and daemons are only touched when missing.
# Usage: scripts/libvirt.sh            the daemon on qemu:///system
#        scripts/libvirt.sh --second   also a second, separate daemon standing for another
#                                      host, at qemu+unix:///system?socket=/run/sdsec-libvirt2/libvirt-sock
set -euo pipefail
second=0
case "${1:-}" in
  --second) second=1 ;;
  "") ;;
  *) echo "usage: $0 [--second]" >&2; exit 2 ;;
esac

say() { echo "libvirt.sh: $*" >&2; }

# Packages: the daemon (with QEMU's driver, and libvirt's client library, libvirt0, which
# the provider loads when a configuration names libvirt); openssl and iproute2 for the test that stands up a remote host.
missing=()
for pkg in libvirt-daemon-system qemu-system-x86 openssl iproute2; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# QEMU runs as libvirt's unprivileged user (the package's default): sdsec's domains name
# that user and need nothing relabelled, since libvirt opens their logs and TAP devices
# and hands QEMU the descriptors. Earlier versions of this script made QEMU run as root;
# those settings are taken out again. In a container there is no SELinux/AppArmor for a
# security driver to apply.
conf=/etc/libvirt/qemu.conf
changed=0
set_conf() {
  local key="$1" value="$2"
  if grep -Eq "^[[:space:]]*$key[[:space:]]*=[[:space:]]*$(printf '%s' "$value" | sed 's/[][\.*^$/]/\\&/g')[[:space:]]*$" "$conf"; then
    return
  fi
  say "setting $key = $value in $conf"
  sed -i -E "/^[[:space:]]*$key[[:space:]]*=/d" "$conf"
  echo "$key = $value" >>"$conf"
  changed=1
}
# Removes `key = value` when it is exactly what an earlier version of this script wrote.
unset_conf() {
  local line="$1 = $2"
  if grep -Fxq "$line" "$conf"; then
    say "removing $line from $conf"
    grep -Fxv "$line" "$conf" >"$conf.sdsec-new" || true
    cat "$conf.sdsec-new" >"$conf" && rm -f "$conf.sdsec-new"
    changed=1
  fi
}
unset_conf user '"root"'
unset_conf group '"root"'
unset_conf dynamic_ownership 0
unset_conf cgroup_device_acl '[ "/dev/null", "/dev/full", "/dev/zero", "/dev/random", "/dev/urandom", "/dev/ptmx", "/dev/kvm", "/dev/userfaultfd", "/dev/net/tun" ]'
set_conf security_driver '"none"'

# /dev/kvm as Debian's udev rule leaves it: read-write for group kvm, which libvirt-qemu is
# in. Where it is root's only (a container's /dev), libvirt finds KVM usable as root but not
# as QEMU's user, takes its cached QEMU capabilities for stale at every look and probes QEMU
# again and again: a domain then takes a minute to start. (sdsec chooses TCG where KVM is not
# real hardware virtualisation; this only makes the device's access consistent.)
if [ -c /dev/kvm ] && getent group kvm >/dev/null && [ "$(stat -c %G:%a /dev/kvm)" != "kvm:660" ]; then
  say "making /dev/kvm read-write for group kvm, as Debian's udev rule does"
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi

# By pid file: a second daemon (--second) runs under the same process names.
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [ "$changed" = 1 ] && running /run/libvirtd.pid; then
  # The configuration is read at start only.
  say "restarting libvirtd to apply $conf"
  pid="$(cat /run/libvirtd.pid)"
  kill "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
if ! running /run/virtlogd.pid; then
  say "starting virtlogd"
  virtlogd -d
fi
if ! running /run/libvirtd.pid; then
  say "starting libvirtd"
  libvirtd -d
fi

# Bounded wait: the daemon takes a moment to probe QEMU's capabilities at first start.
wait_for() {
  local uri="$1" log="$2"
  for _ in $(seq 300); do
    if virsh -c "$uri" version >/dev/null 2>&1; then
      say "libvirtd answers on $uri ($(virsh -c "$uri" version 2>/dev/null | grep -m1 'Running hypervisor' | sed 's/.*: //'))"
      return 0
    fi
    sleep 0.1
  done
  say "error: libvirtd does not answer on $uri after 30 s; see $log or run \`libvirtd -v\` in the foreground"
  exit 1
}
wait_for qemu:///system /var/log/libvirt/libvirtd.log
[ "$second" = 1 ] || exit 0

# A second daemon on this machine that shares nothing with the first: its own mount
# namespace gives it private /run/libvirt, /var/lib/libvirt, /var/cache/libvirt,
# /var/log/libvirt and /etc/libvirt (two daemons on the same state directories would
# adopt each other's domains). Only its socket directory is visible outside.
sock_dir=/run/sdsec-libvirt2
priv=/var/lib/sdsec-libvirt2
uri2="qemu+unix:///system?socket=$sock_dir/libvirt-sock"
if ! running "$sock_dir/libvirtd.pid"; then
  say "starting a second libvirtd at $uri2"
  mkdir -p "$sock_dir" "$priv"/{run,lib,cache,log}
  rm -rf "$priv/etc" && cp -a /etc/libvirt "$priv/etc"
  sed -i -E '/^[[:space:]]*unix_sock_dir[[:space:]]*=/d' "$priv/etc/libvirtd.conf"
  echo "unix_sock_dir = \"$sock_dir\"" >>"$priv/etc/libvirtd.conf"
  unshare -m --propagation private sh -euc '
    priv="$1"; sock_dir="$2"
    mount --bind "$priv/run" /run/libvirt
    mount --bind "$priv/lib" /var/lib/libvirt
    mount --bind "$priv/cache" /var/cache/libvirt
    mount --bind "$priv/log" /var/log/libvirt
    mount --bind "$priv/etc" /etc/libvirt
    virtlogd -d -p "$sock_dir/virtlogd.pid"
    libvirtd -d -f /etc/libvirt/libvirtd.conf -p "$sock_dir/libvirtd.pid"
  ' sh "$priv" "$sock_dir"
fi
wait_for "$uri2" "$priv/log/libvirtd.log"
