# Shared by tests/e2e/*.sh: TAP-style checks. Each script sets fail=0 n=0 first.
check() { # check NAME WANT GOT
  n=$((n+1))
  if [ "$2" = "$3" ]; then echo "ok $n - $1"; else echo "not ok $n - $1: want [$2] got [$3]"; fail=1; fi
}
has() { # has NAME NEEDLE HAYSTACK
  n=$((n+1))
  case "$3" in *"$2"*) echo "ok $n - $1";; *) echo "not ok $n - $1: [$2] not in [$3]"; fail=1;; esac
}

# The podman checks both podman scripts make (rootful and rootless): a pty, then on a detached
# container exec (plain, -i, exit code), top, the caller's own checks ($1 ID, if given), stop
# with SIGTERM honoured, and kill. Uses the caller's P (podman and its global flags), RUN (P run
# and run flags) and IMG.
podman_common_checks() { # podman_common_checks [EXTRA_FUNCTION]
  local out rc id
  out=$(printf 'tty; exit 5\n' | script -qec "${RUN[*]} --rm -it $IMG sh" /dev/null 2>&1); rc=$?
  has "run -it: a pty" "/dev/pts/0" "$out"; check "run -it exit status" 5 $rc
  id=$("${RUN[@]}" -d $IMG sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done')
  check "exec" "in" "$("${P[@]}" exec "$id" echo in)"
  check "exec -i with stdin" "piped" "$(echo piped | "${P[@]}" exec -i "$id" cat)"
  "${P[@]}" exec "$id" sh -c 'exit 7'; check "exec exit code" 7 $?
  has "top" "sleep" "$("${P[@]}" top "$id" 2>&1)"
  [ -n "${1:-}" ] && "$1" "$id"
  "${P[@]}" stop -t 2 "$id" >/dev/null
  check "stop (SIGTERM honoured)" "0" "$("${P[@]}" inspect -f '{{.State.ExitCode}}' "$id")"
  "${P[@]}" rm "$id" >/dev/null
  id=$("${RUN[@]}" -d $IMG sleep 100)
  "${P[@]}" kill "$id" >/dev/null; "${P[@]}" wait "$id" >/dev/null
  check "kill" "exited" "$("${P[@]}" inspect -f '{{.State.Status}}' "$id")"
  "${P[@]}" rm -f "$id" >/dev/null
}

# containerd_config FILE ROOT STATE SOCK: a private containerd's config (its own root, state
# and sockets; no CRI, none of the snapshotters this host cannot use).
containerd_config() {
  cat > "$1" <<C
version = 2
root = "$2"
state = "$3"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$4"
[ttrpc]
  address = "$4.ttrpc"
[debug]
  address = "$4.debug"
C
}
