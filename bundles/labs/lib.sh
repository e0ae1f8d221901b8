# Shared by every lab script (bundles/labs/<name>/lab.sh): how to call onggi and how to show it.
#
#   ONGGI     the onggi binary (default: the newest target/<triple>/release/onggi of this checkout)
#   LAB_ROOT  onggi's state directory for the labs (default /run/onggi-labs)
#
# Each command a lab runs is printed first, prefixed with "$ ", the way you would type it;
# what follows it is what that command printed.
set -euo pipefail
LABS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOTFS=$LABS/../rootfs
ONGGI=${ONGGI:-$(ls -t "$LABS"/../../target/*/release/onggi 2>/dev/null | head -1)}
LAB_ROOT=${LAB_ROOT:-/run/onggi-labs}
[ -x "$ONGGI" ] || { echo "lab: $ONGGI missing: run 'make build' first" >&2; exit 1; }
[ -x "$ROOTFS/bin/busybox" ] || { echo "lab: $ROOTFS missing: run 'make bundles' first" >&2; exit 1; }

# onggi with the labs' state root.
onggi() { "$ONGGI" --root "$LAB_ROOT" "$@"; }

# quoted ARGS: the arguments as you would type them (single quotes where needed).
quoted() {
  local a out=""
  for a in "$@"; do
    case $a in
      *[!A-Za-z0-9_./=:,+@%-]*|'') out+=" '${a//\'/\'\\\'\'}'" ;;
      *) out+=" $a" ;;
    esac
  done
  echo "${out# }"
}

# show ARGS: prints "$ onggi ARGS", then runs it.
show() {
  echo "\$ onggi $(quoted "$@")"
  if picture_by show "$1"; then onggi --trace --trace-format chrome "$@" 2>>"$LAB_PICTURE"; else onggi "$@"; fi
}

# Picture mode (`make labs-pictures` sets LAB_PICTURE=FILE and LAB_PICTURE_BY): the lab's
# show_trace command (LAB_PICTURE_BY=show_trace), or in a lab without one its first `run`,
# `create` or `exec` (LAB_PICTURE_BY=show), writes its Chrome trace to FILE instead of its
# usual trace; examples/trace-svg.rs draws FILE as the lab's trace.svg.
picture_by() { # picture_by CALLER VERB
  [ -n "${LAB_PICTURE:-}" ] && [ ! -s "$LAB_PICTURE" ] && [ "${LAB_PICTURE_BY:-}" = "$1" ] &&
    case $2 in run | create | exec) true ;; *) false ;; esac
}

# on_host CMD: prints "$ CMD" (a host command), then runs it.
on_host() { echo "\$ $(quoted "$@")"; "$@"; }

# status ID: the container's status from `onggi state`, or "deleted" when onggi no longer
# knows it.
status() {
  local s
  if s=$(onggi state "$1" 2>/dev/null); then
    echo "$s" | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p'
  else
    echo deleted
  fi
}

# wait_status ID STATUS [SECONDS]: waits (default 5 s) until the container reaches STATUS.
wait_status() {
  local i
  for i in $(seq $((${3:-5} * 20))); do
    [ "$(status "$1")" = "$2" ] && return 0
    sleep 0.05
  done
  return 1
}

# pid ID: the container init's pid as the host sees it.
pid_of() { onggi state "$1" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'; }

# trace_of STEP... : keeps the --trace lines of those steps (read from stdin), one kernel call
# per line.
trace_of() {
  local re
  re=$(printf '|%s' "$@")
  { grep -E "^\+ *[0-9.]+ms +[a-z]+ +(${re:1}) " || true; } | sed 's/); /)\n      /g'
}

# cgroup_v2: the cgroup v2 mount point, from /proc/self/mountinfo (never assumed).
cgroup_v2() { awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo; }

# cleanup ID...: on exit, force-delete these containers so a failed lab leaves nothing; a lab
# that made more (a netns, a mount) defines lab_after, which runs last.
cleanup() {
  LAB_IDS="$*"
  trap lab_exit EXIT
}
lab_exit() {
  local id
  for id in $LAB_IDS; do onggi delete --force "$id" >/dev/null 2>&1 || true; done
  if declare -F lab_after >/dev/null; then lab_after >/dev/null 2>&1 || true; fi
}

# show_trace "STEP..." ARGS: like show, with --trace; keeps the trace lines of those steps only.
show_trace() {
  local steps=$1
  shift
  echo "\$ onggi --trace $(quoted "$@")   # trace lines of: $steps"
  # Into a file, not a pipe: after `create` the waiting init still holds onggi's stderr, and a
  # pipe reader would wait for it.
  local log rc=0
  log=$(mktemp)
  if picture_by show_trace "$1"; then
    onggi --trace --trace-format chrome "$@" 2>"$LAB_PICTURE" || rc=$?
    rm -f "$log"
    return $rc
  fi
  onggi --trace "$@" 2>"$log" || rc=$?
  # shellcheck disable=SC2086
  trace_of $steps < "$log"
  grep -v '^+ ' "$log" >&2 || true
  rm -f "$log"
  return $rc
}
