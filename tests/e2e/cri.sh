#!/bin/bash
# make e2e-cri: a Kubernetes node on one machine. containerd 1.6's CRI plugin, with a runtime
# handler `onggi` (io.containerd.runc.v2, BinaryName onggi), is driven over its CRI socket by
# tests/e2e/cri/kubelet.py, which makes the kubelet's calls. Pod networking is Debian's CNI
# plugins (bridge + host-local + loopback) in this private network namespace; the sandbox image
# is tests/e2e/cri/pause.c, built static here. Run it in the pure cgroup v2 guest, in private
# mount and network namespaces (make e2e-cri): CRI_DRIVER=cgroupfs (kubelet-style parents
# /kubepods/burstable/pod<uid>) or CRI_DRIVER=systemd (SystemdCgroup = true, slice parents, in
# the systemd guest). Everything is removed at the end, and checked to be gone.
# usage: tests/e2e/cri.sh /abs/path/to/onggi /abs/path/to/busybox-rootfs
set -uo pipefail
ONGGI=${1:?usage: cri.sh ONGGI ROOTFS}; ROOTFS=${2:?usage: cri.sh ONGGI ROOTFS}
DRIVER=${CRI_DRIVER:-cgroupfs}
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ] ||
  { echo "cri.sh: run me in a private network namespace (make e2e-cri)"; exit 2; }
[ -d /var/lib/cni ] || { echo "cri.sh: /var/lib/cni must exist (containerd 1.6 caches CNI results there; make e2e-cri makes it)"; exit 2; }
python3 -c 'import grpc, cri_api.v1.api_pb2' 2>/dev/null ||
  { echo "cri.sh: needs PyPI's container-runtime-interface-api (pip install container-runtime-interface-api)"; exit 2; }
T=$(mktemp -d /var/tmp/onggi-e2e-cri.XXXXXX)
SOCK=$T/containerd.sock
STATE=/run/onggi-e2e-cri
OROOT=/run/onggi-e2e-cri-onggi
v2=$(awk '$9 == "cgroup2" { print $5 }' /proc/self/mountinfo | tail -1)
fail=0; n=0
source "$HERE/lib.sh"
ip link set lo up
mkdir -p "$T/cni-cache" "$T/net.d" "$T/opt"
mount --bind "$T/cni-cache" /var/lib/cni

systemd=false; [ "$DRIVER" = systemd ] && systemd=true
containerd_config "$T/config.toml" "$T/root" "$STATE" "$SOCK"
sed -i 's/"io.containerd.grpc.v1.cri", //' "$T/config.toml"
cat >> "$T/config.toml" <<C
[plugins."io.containerd.internal.v1.opt"]
  path = "$T/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/onggi-pause:latest"
  # The sandbox asks for oom_score_adj -998; without CAP_SYS_RESOURCE it may only go up.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.onggi]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.onggi.options]
        BinaryName = "$ONGGI"
        Root = "$OROOT"
        SystemdCgroup = $systemd
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$T/net.d"
C
cat > "$T/net.d/10-onggi.conflist" <<C
{"cniVersion": "1.0.0", "name": "onggi-cri", "plugins": [
  {"type": "bridge", "bridge": "onggi-cri0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.47.0/24"}]], "dataDir": "$T/ipam"}}]}
C

containerd --config "$T/config.toml" >"$T/containerd.log" 2>&1 &
CPID=$!
cleanup() {
  kill "$CPID" 2>/dev/null; wait "$CPID" 2>/dev/null
  pkill -f "containerd-shim-runc-v2 -namespace k8s.io -address $SOCK" 2>/dev/null
  grep -o " $T[^ ]*\| $STATE[^ ]*\| $OROOT[^ ]*\| /run/netns/cni-[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  umount -l /var/lib/cni 2>/dev/null
  rm -rf "$T" "$STATE" "$OROOT"
}
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { echo "containerd did not start:"; tail "$T/containerd.log"; exit 2; }

# Two images in containerd's k8s.io namespace (the CRI's), made with umoci from copies on
# this tmpfs-backed dir (umoci lists xattrs, which a virtiofs root refuses): the busybox rootfs,
# and the pause image.
mkdir -p "$T/img/busybox" "$T/img/pause"
cp -a "$ROOTFS/." "$T/img/busybox/"
gcc -static -Os -s -o "$T/img/pause/pause" "$HERE/cri/pause.c" || { echo "cri.sh: gcc -static failed"; exit 2; }
image() { # image DIR NAME UMOCI-CONFIG-FLAGS...
  local L=$T/layout-$2 d=$1 name=$2; shift 2
  { umoci init --layout "$L" && umoci new --image "$L:latest" && umoci insert --image "$L:latest" "$d" / &&
    umoci config --image "$L:latest" "$@" && tar -C "$L" -cf "$L.tar" . &&
    ctr -a "$SOCK" -n k8s.io images import --base-name "localhost/$name" "$L.tar"; } >/dev/null 2>&1 ||
    { echo "cri.sh: could not make the image $name"; exit 2; }
}
image "$T/img/busybox" onggi-busybox --config.cmd sh --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin
image "$T/img/pause" onggi-pause --config.entrypoint /pause

python3 "$HERE/cri/kubelet.py" --handler "${CRI_HANDLER:-onggi}" --sock "$SOCK" --driver "$DRIVER" --onggi-root "$OROOT" --dir "$T" --onggi "$ONGGI"
rc=$?
[ $rc = 0 ] || { echo "# containerd's errors:"; grep 'level=error' "$T/containerd.log" | tail -20 | sed 's/^/# /'; }
exit $rc
