#!/bin/bash
# Lab 17 — port-publish: a DNAT rule sends the host's port 8080 to busybox httpd on port 80
# in a container's network namespace (docker run -p 8080:80). The lab runs in a network
# namespace of its own: the veth and the iptables rule never touch the host's.
[ -n "${LAB_OWN_NETNS:-}" ] || exec unshare -n env LAB_OWN_NETNS=1 bash "$0" "$@"
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
cleanup lab-port
work=$(mktemp -d /tmp/onggi-lab-port.XXXXXX)
lab_after() { rm -rf "$work"; }
mkdir -p "$work/web" "$work/www" && ln -s "$ROOTFS" "$work/web/rootfs"
echo "hello from the container's httpd" > "$work/www/index.html"
ip link set lo up

show spec -b "$work/web" --tty=false -v "$work/www:/mnt:ro" -- httpd -f -p 80 -h /mnt
show create -b "$work/web" lab-port
pid=$(pid_of lab-port)
echo "# the container's network: a veth pair, 10.78.0.2 inside, 10.78.0.1 on the host side"
on_host ip link add veth-web type veth peer name eth0 netns "$pid"
on_host ip addr add 10.78.0.1/24 dev veth-web
on_host ip link set veth-web up
on_host nsenter -t "$pid" -n ip addr add 10.78.0.2/24 dev eth0
on_host nsenter -t "$pid" -n ip link set eth0 up
show start lab-port
for _ in $(seq 100); do onggi exec lab-port netstat -tln 2>/dev/null | grep -q ':80 ' && break; sleep 0.05; done

echo "# -p 8080:80: rewrite the destination of what is sent to the host's port 8080"
on_host iptables -t nat -A OUTPUT -p tcp -d 10.78.0.1 --dport 8080 -j DNAT --to-destination 10.78.0.2:80
on_host iptables -t nat -A PREROUTING -p tcp --dport 8080 -j DNAT --to-destination 10.78.0.2:80
on_host iptables -t nat -S OUTPUT
on_host wget -q -O - http://10.78.0.1:8080/
echo "# inside, httpd listens on its own port 80; nothing listens on 8080 anywhere"
show exec lab-port netstat -tln
show delete --force lab-port
