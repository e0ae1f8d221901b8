#!/bin/bash
# Lab 19 — commit: what a container changed is its overlay upper directory; packed as a tar it
# is a new image layer, and a container on that layer sees the changes (docker commit).
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
cleanup lab-commit-1 lab-commit-2
work=$(mktemp -d /tmp/onggi-lab-commit.XXXXXX)
lab_after() { umount "$work/one/rootfs" "$work/two/rootfs"; rm -rf "$work"; }
mkdir -p "$work/one/rootfs" "$work/upper1" "$work/work1" "$work/two/rootfs" "$work/layer" "$work/upper2" "$work/work2"

echo "# container 1 on the busybox image: it adds a file and deletes one"
on_host mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=$work/upper1,workdir=$work/work1" "$work/one/rootfs"
show spec -b "$work/one" --tty=false --read-only=false -- sh -c 'mkdir /app && echo "made in container 1" > /app/greeting.txt && rm /etc/hostname'
show_trace "enter_template" run -b "$work/one" lab-commit-1
on_host umount "$work/one/rootfs"

echo "# docker commit: the upper directory, packed, is the new layer"
(cd "$work/upper1" && on_host tar -cf ../layer.tar .)
echo "\$ tar -tvf $work/layer.tar"
tar -tvf "$work/layer.tar" | awk '{print $1, $NF}' | sort -k2
echo "# (etc/hostname is a whiteout: a character device 0/0 that hides the file below it)"

echo "# container 2 on the committed image: the new layer over the busybox rootfs"
on_host tar -C "$work/layer" -xf "$work/layer.tar"
on_host mount -t overlay overlay -o "lowerdir=$work/layer:$ROOTFS,upperdir=$work/upper2,workdir=$work/work2" "$work/two/rootfs"
show spec -b "$work/two" --tty=false -- sh -c 'cat /app/greeting.txt; ls /etc'
show run -b "$work/two" lab-commit-2
