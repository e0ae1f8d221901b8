#!/bin/bash
# Lab 4 — pid-namespace: inside, the container's first process is PID 1; the host sees its real pid.
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
id=lab-pid
cleanup $id

show_trace "clone3" run -d --bundle . $id
show exec $id ps -o pid,args
pid=$(pid_of $id)
echo "# the same process seen from the host: pid $pid"
on_host grep NSpid /proc/$pid/status
echo "# NSpid lists its pid in each pid namespace, outermost first: $pid on the host, 1 inside"
show ps $id
show delete --force $id
