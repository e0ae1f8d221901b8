#!/bin/bash
# Lab 7 — volumes: a bind mount (docker run -v ./data:/mnt) and its read-only variant (:ro).
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
cleanup lab-volumes
mkdir -p data
lab_after() { rm -rf "$LABS/volumes/data"; }
echo "# rw/config.json: $(grep '"/mnt"' rw/config.json | sed 's/^ *//; s/,$//')"
show_trace "mounts" run --bundle rw lab-volumes | grep -v '^      mount('
echo "# on the host, the file is in ./data:"
on_host cat data/note.txt
echo "# ro/config.json: $(grep '"/mnt"' ro/config.json | sed 's/^ *//; s/,$//')"
show run --bundle ro lab-volumes || echo "(exit status $?)"
on_host cat data/note.txt
