#!/bin/bash
# Lab 6 — network-none-host: a new network namespace has only lo (--net none); none at all
# shares the host's (--net host); joining a named one shares it (--net container:NAME).
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
cleanup lab-net lab-net-a lab-net-b
host_ns=$(readlink /proc/self/ns/net)
echo "# the host's network namespace: $host_ns, $(ip -o link | wc -l) interfaces"

echo "# none/: linux.namespaces has {\"type\": \"network\"}, a new namespace"
out=$(show_trace "loopback" run --bundle none lab-net)
echo "$out"
[ "$(echo "$out" | tail -1)" != "$host_ns" ] && echo "=> a new network namespace, not the host's"

echo "# host/: no network entry in linux.namespaces"
out=$(show run --bundle host lab-net)
echo "$out"
[ "$(echo "$out" | sed -n 2p)" = "$host_ns" ] && echo "=> the host's own network namespace, all its interfaces"

echo "# joined/: {\"type\": \"network\", \"path\": \"/var/run/netns/onggi-lab\"}"
on_host ip netns add onggi-lab
lab_after() { ip netns del onggi-lab; }
a=$(onggi run --bundle joined lab-net-a)
b=$(onggi run --bundle joined lab-net-b)
echo "container a: $a"
echo "container b: $b"
[ "$a" = "$b" ] && [ "$a" != "$host_ns" ] && echo "=> both share the named namespace, like docker run --net container:a"
