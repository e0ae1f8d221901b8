#!/bin/bash
# Lab 12 — user-namespace: uid 0 inside is uid 100000 outside (docker's userns-remap).
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
id=lab-userns
cleanup $id
mkdir -p data
chown 100000:100000 data
lab_after() { rm -rf "$LABS/user-namespace/data"; }
echo "# config.json: \"uidMappings\": $(grep '"uidMappings"' config.json | sed 's/^ *"uidMappings": //; s/,$//')"
show_trace "id_maps" run -d --bundle . $id
for i in $(seq 100); do [ -e data/made-inside ] && break; sleep 0.05; done
echo "# what the container saw (it wrote it to /mnt/inside.txt):"
on_host cat data/inside.txt
pid=$(pid_of $id)
echo "# the same process from the host:"
on_host grep -E '^(Uid|Gid):' /proc/$pid/status
echo "# the file it wrote to the bind-mounted ./data, from the host:"
on_host stat -c '%n owned by %u:%g' data/made-inside
show delete --force $id
