#!/bin/bash
# Lab 14 — stop: what `docker stop` does: SIGTERM, a grace period, then SIGKILL.
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
cleanup lab-polite lab-stubborn
GRACE=2

# stop ID: SIGTERM, wait up to GRACE seconds, then SIGKILL.
stop() {
  show kill "$1" TERM
  if wait_status "$1" stopped $GRACE; then
    echo "$1: stopped after SIGTERM"
  else
    echo "$1: still $(status "$1") after ${GRACE}s: SIGKILL"
    show kill "$1" KILL
    wait_status "$1" stopped
    echo "$1: stopped after SIGKILL"
  fi
}

for c in polite stubborn; do
  show run -d --bundle $c lab-$c
  # Wait until its shell runs (and, for polite, has its TERM trap in place).
  for i in $(seq 100); do onggi exec lab-$c test -e /tmp/ready 2>/dev/null && break; sleep 0.05; done
  stop lab-$c
  show delete lab-$c
done
