#!/bin/bash
# Lab 5 — uts-ipc: the container's own hostname, and System V IPC objects the host cannot share.
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
cleanup lab-uts

before=$(hostname)
show_trace "hostname" run --bundle own lab-uts
[ "$(hostname)" = "$before" ] && echo "host hostname unchanged: $before"
echo "# a System V shared memory segment made on the host:"
shmid=$(ipcmk -M 4096 | awk '{print $NF}')
lab_after() { ipcrm -m "$shmid"; }
echo "segment $shmid: $(awk -v id="$shmid" '$2 == id {print "listed in the host /proc/sysvipc/shm"}' /proc/sysvipc/shm)"
echo "# own/ again, now that the segment exists: its own ipc namespace"
onggi run --bundle own lab-uts | tail -1
echo "# and in the host's ipc namespace (host-ipc/: no ipc entry in linux.namespaces)"
onggi run --bundle host-ipc lab-uts
echo "shm segments visible on the host: $(($(grep -c . /proc/sysvipc/shm) - 1))"
