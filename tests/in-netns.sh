#!/usr/bin/env bash
# Runs a command in a private network namespace (`unshare -n`, needs root or CAP_SYS_ADMIN)
# holding `lo` and a veth pair v0 <-> v1, with WSKUDP_TEST_IFACE=v0 so the scenarios send
# IPv6 multicast, to link-local scope ids and over a 1500-byte MTU through it. Both ends of
# the pair are in the namespace and it has no other interface: nothing sent leaves it, which
# keeps the tests' "loopback only" rule (README "Beyond loopback: a private network namespace").
#
#   tests/in-netns.sh cargo test --offline --locked -p wskudp-harness --test send_path
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
exec unshare -n bash -c '
set -euo pipefail
ip link set lo up
ip link add v0 type veth peer name v1
ip link set v0 up
ip link set v1 up
# v0 has a link-local address once IPv6 duplicate address detection is done (about 1 s).
for _ in $(seq 50); do
  if ip -6 -o addr show dev v0 scope link | grep -q fe80 &&
     ! ip -6 -o addr show dev v0 | grep -q tentative; then
    break
  fi
  sleep 0.2
done
export WSKUDP_TEST_IFACE=v0
exec "$@"
' in-netns "$@"
