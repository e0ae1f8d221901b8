#!/bin/bash
# Lab 11 — seccomp: a filter in the kernel answers mkdir with EPERM before it runs
# (docker run --security-opt seccomp=profile.json).
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
cleanup lab-seccomp
echo "# config.json:"
sed -n '/"seccomp"/,/^    }/p' config.json
show_trace "seccomp_compile seccomp" run --bundle . lab-seccomp || echo "(exit status $?)"
