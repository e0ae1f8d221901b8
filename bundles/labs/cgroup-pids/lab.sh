#!/bin/bash
# Lab 9b — cgroup-pids: pids.max stops a fork bomb at the limit (docker run --pids-limit 10).
# Needs the cgroup v2 pids controller: `make lab-cgroup-pids` runs it in the pure v2 guest.
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
id=lab-pids
cleanup $id
grep -qw pids "$(cgroup_v2)/cgroup.controllers" || { echo "lab: no pids controller in $(cgroup_v2): run 'make lab-cgroup-pids'" >&2; exit 1; }
echo "# config.json: \"resources\": $(grep '"pids"' config.json | sed 's/^ *"resources": //')"
log=$(mktemp)
lab_after() { rm -f "$log"; }
show run -d --bundle . $id > "$log"
for i in $(seq 100); do grep -q "fork loop done" "$log" && break; sleep 0.1; done
cat "$log"
dir=$(cgroup_v2)/$id
echo "pids.current: $(cat "$dir/pids.current") of pids.max $(cat "$dir/pids.max")"
echo "pids.events: $(cat "$dir/pids.events")"
show delete --force $id
