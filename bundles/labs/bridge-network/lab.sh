#!/bin/bash
# Lab 16 — bridge-network: two containers on a Linux bridge, each through a veth pair whose
# inner end is moved into its network namespace, ping each other (docker network create).
# The lab runs in a network namespace of its own: the bridge and veths never touch the host's.
[ -n "${LAB_OWN_NETNS:-}" ] || exec unshare -n env LAB_OWN_NETNS=1 bash "$0" "$@"
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
cleanup lab-br-a lab-br-b
work=$(mktemp -d /tmp/onggi-lab-bridge.XXXXXX)
lab_after() { rm -rf "$work"; }
mkdir -p "$work/a" "$work/b" && ln -s "$ROOTFS" "$work/a/rootfs" && ln -s "$ROOTFS" "$work/b/rootfs"

echo "# the bridge, as docker network create makes one (docker0 is another)"
on_host ip link add onggi-br0 type bridge
on_host ip addr add 10.77.0.1/24 dev onggi-br0
on_host ip link set onggi-br0 up

# connect ID ADDR: a veth pair, one end on the bridge, the other moved into the container's
# network namespace as eth0 with ADDR, while the container waits at its start gate.
connect() {
  local pid veth=veth-${1#lab-br-}
  pid=$(pid_of "$1")
  echo "# connect $1: $veth on the bridge, eth0 $2/24 inside (the init, pid $pid, waits at the gate)"
  on_host ip link add "$veth" type veth peer name eth0 netns "$pid"
  on_host ip link set "$veth" master onggi-br0 up
  on_host nsenter -t "$pid" -n ip addr add "$2/24" dev eth0
  on_host nsenter -t "$pid" -n ip link set eth0 up
}

show spec -b "$work/a" --hostname a --tty=false -- sleep 60
show create -b "$work/a" lab-br-a
connect lab-br-a 10.77.0.2
show start lab-br-a
echo "# what the kernel sees of lab-br-a: a network namespace of its own"
onggi explain lab-br-a | grep -E '^namespaces|^  net '

show spec -b "$work/b" --hostname b --tty=false --cap-add NET_RAW -- ping -c 2 -W 2 10.77.0.2
show create -b "$work/b" lab-br-b
connect lab-br-b 10.77.0.3
echo "# both veths hang on the bridge:"
# (a veth says UP once the kernel has seen its peer's carrier: a moment after `link set up`)
for _ in $(seq 100); do
  [ "$(ip -br link show master onggi-br0 | grep -vc ' UP ')" = 0 ] && break; sleep 0.02
done
on_host ip -br link show master onggi-br0
show start lab-br-b
wait_status lab-br-b stopped 10
echo "# lab-br-b has exited: its network namespace is gone, and with it its veth pair"
on_host ip -br link show master onggi-br0
show delete --force lab-br-a
show delete lab-br-b
