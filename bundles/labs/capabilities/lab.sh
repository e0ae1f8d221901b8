#!/bin/bash
# Lab 10 — capabilities: root in a container is only as strong as its capability sets
# (docker run --cap-drop ALL / --cap-add).
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
cleanup lab-caps
for b in dropped granted; do
  echo "# $b/config.json: $(grep -o '"effective": \[[^]]*\]' $b/config.json)"
  show_trace "capabilities" run --bundle $b lab-caps
done
