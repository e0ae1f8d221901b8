#!/bin/bash
# Lab 1 — lifecycle: create, start, pause, resume, kill, delete, and the status at each step.
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
id=lab-lifecycle
cleanup $id

show_trace "clone3 enter_template pivot_root gate" create --bundle . $id
echo "status: $(status $id)"
echo "the init is waiting at the start gate, pid $(pid_of $id): $(tr "\0" " " < /proc/$(pid_of $id)/cmdline | sed "s@^[^ ]*/@@")"
show start $id
echo "status: $(status $id)"
show pause $id
echo "status: $(status $id)"
echo "cgroup.freeze: $(cat "$(cgroup_v2)/$id/cgroup.freeze")"
show resume $id
echo "status: $(status $id)"
show kill $id KILL
wait_status $id stopped
echo "status: $(status $id)"
show delete $id
echo "status: $(status $id)"
