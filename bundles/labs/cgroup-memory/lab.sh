#!/bin/bash
# Lab 9a — cgroup-memory: memory.max caps a container; a process that keeps allocating is
# killed by the kernel's OOM killer (docker run -m 32m). Needs the cgroup v2 memory
# controller: `make lab-cgroup-memory` runs it in the pure cgroup v2 guest.
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
id=lab-memory
cleanup $id
grep -qw memory "$(cgroup_v2)/cgroup.controllers" || { echo "lab: no memory controller in $(cgroup_v2): run 'make lab-cgroup-memory'" >&2; exit 1; }
echo "# config.json: \"resources\": $(grep '"memory"' config.json | sed 's/^ *"resources": //')"
show_trace "cgroup_resources" run -d --bundle . $id
wait_status $id stopped 20
dir=$(cgroup_v2)/$id
echo "status: $(status $id)"
echo "memory.max: $(cat "$dir/memory.max")"
echo "memory.events: $(grep oom_kill "$dir/memory.events")"
show delete $id
