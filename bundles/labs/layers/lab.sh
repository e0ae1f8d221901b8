#!/bin/bash
# Lab 8 — layers: an image is read-only layers stacked by overlayfs; the container writes to
# its own upper layer (copy-on-write), and the image layers never change.
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
cleanup lab-layers
work=$(mktemp -d /tmp/onggi-lab-layers.XXXXXX)
lab_after() { umount "$LABS/layers/merged"; rmdir "$LABS/layers/merged"; rm -rf "$work"; }
# Layer 1 ("the base image"): the shared busybox rootfs. Layer 2 ("the app layer"): two files.
mkdir -p "$work/app-layer/app" "$work/app-layer/etc" "$work/upper" "$work/work" merged
echo "hello from the app layer" > "$work/app-layer/app/message.txt"
echo "welcome (from the app layer)" > "$work/app-layer/etc/motd"
echo "# lower layers: app-layer over the busybox rootfs; upper: the container's own layer"
on_host mount -t overlay overlay -o "lowerdir=$work/app-layer:$ROOTFS,upperdir=$work/upper,workdir=$work/work" merged
echo "# config.json: \"root\": {\"path\": \"merged\"}"
show_trace "enter_template pivot_root" run --bundle . lab-layers
on_host umount merged
echo "# the upper layer holds every change the container made:"
(cd "$work/upper" && find . -mindepth 1 ! -type d | sort | while read -r f; do
  if [ -c "$f" ]; then echo "$f  (a whiteout: character device 0/0 = deleted)"; else echo "$f: $(cat "$f")"; fi
done)
echo "# the app layer is untouched:"
echo "app/message.txt: $(cat "$work/app-layer/app/message.txt")"
echo "etc/motd: $(cat "$work/app-layer/etc/motd")"
