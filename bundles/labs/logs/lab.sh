#!/bin/bash
# Lab 18 — logs: a detached container's stdout is a file the runtime handed it, and following
# the file is `docker logs -f` (containerd's shim or conmon does the same with a pipe).
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
cleanup lab-logs
work=$(mktemp -d /tmp/onggi-lab-logs.XXXXXX)
lab_after() { rm -rf "$work"; }
mkdir -p "$work/counter" && ln -s "$ROOTFS" "$work/counter/rootfs"
show spec -b "$work/counter" --tty=false -- sh -c 'i=1; while [ $i -le 5 ]; do echo "tick $i"; i=$((i+1)); sleep 0.2; done; echo "done" >&2'
echo "\$ onggi run -d -b $work/counter lab-logs > $work/container.log 2>&1"
# Picture mode (make labs-pictures): this run is the lab's picture; its trace shares the log.
trace=(); [ -n "${LAB_PICTURE:-}" ] && trace=(--trace --trace-format chrome)
onggi "${trace[@]}" run -d -b "$work/counter" lab-logs > "$work/container.log" 2>&1
pid=$(pid_of lab-logs)
echo "# the container's stdout and stderr, as the host sees them:"
echo "fd 1 -> $(readlink /proc/$pid/fd/1 | sed "s@$work@WORK@")"
echo "fd 2 -> $(readlink /proc/$pid/fd/2 | sed "s@$work@WORK@")"
echo "# docker logs -f: follow the file while the container writes"
on_host timeout 5 tail -f --pid "$pid" "$work/container.log"
wait_status lab-logs stopped 10
[ -z "${LAB_PICTURE:-}" ] || cp "$work/container.log" "$LAB_PICTURE"
echo "# the whole log, once the container has stopped:"
on_host wc -l "$work/container.log"
show delete lab-logs
