#!/bin/sh
# Builds a minimal root filesystem from Debian's busybox-static into DIR (default bundles/rootfs):
# /bin/busybox, one symlink per applet, /etc/passwd and /etc/group, and the usual empty
# directories. Every bundle under bundles/ shares it (their config.json say root.path ../rootfs).
set -eu
dir=${1:-$(dirname "$0")/rootfs}
bb=$(command -v busybox || true)
if [ -z "$bb" ] || ldd "$bb" >/dev/null 2>&1; then
  echo "make-rootfs: needs a static busybox: apt-get install busybox-static" >&2
  exit 1
fi
tmp=$(mktemp -d "${dir%/}.XXXXXX")
mkdir -p "$tmp/bin" "$tmp/etc" "$tmp/proc" "$tmp/sys" "$tmp/dev" "$tmp/tmp" "$tmp/root" \
         "$tmp/run" "$tmp/var" "$tmp/home" "$tmp/mnt"
chmod 1777 "$tmp/tmp"
cp "$bb" "$tmp/bin/busybox"
for a in $("$bb" --list); do
  [ "$a" = busybox ] || ln -sf busybox "$tmp/bin/$a"
done
mkdir -p "$tmp/sbin" "$tmp/usr/bin" "$tmp/usr/sbin"
cat > "$tmp/etc/passwd" <<PW
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
cat > "$tmp/etc/group" <<GR
root:x:0:
tty:x:5:
nogroup:x:65534:
GR
echo "onggi" > "$tmp/etc/hostname"
rm -rf "$dir"
mv "$tmp" "$dir"
chmod 755 "$dir"
echo "rootfs ready: $dir ($("$bb" --list | wc -l) applets)"
