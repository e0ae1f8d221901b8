#!/bin/bash
# Lab 2 — entrypoint-cmd: process.args is the image's ENTRYPOINT followed by its CMD.
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
cleanup lab-entry

for b in image-default override-cmd override-entrypoint; do
  echo "# $b/config.json: $(grep '"args"' $b/config.json | sed 's/^ *//; s/,$//')"
  show_trace "find_executable execve" run --bundle $b lab-entry
done
