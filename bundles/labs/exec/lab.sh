#!/bin/bash
# Lab 13 — exec: a new process joins a running container's namespaces and cgroup, with its own
# terminal (docker exec -it). `script` gives it a real terminal here, as your shell would; its
# stdin is /dev/null, as nobody types here (a script fed EOF may write a control byte into the
# terminal, which would be relayed into the container and echoed as ^@).
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
id=lab-exec
cleanup $id
show run -d --bundle . $id
echo "\$ onggi --trace exec -t $id sh -c 'tty; echo pid \$\$; hostname'   # trace lines of: setns"
log=$(mktemp) format=text
# Picture mode (make labs-pictures): this exec is the lab's picture.
[ -n "${LAB_PICTURE:-}" ] && log=$LAB_PICTURE format=chrome
script -qec "$ONGGI --root $LAB_ROOT --trace --trace-format $format exec -t $id sh -c 'tty; echo pid \$\$; hostname' 2>$log </dev/null" /dev/null | tr -d '\r'
[ -n "${LAB_PICTURE:-}" ] || { trace_of setns < "$log"; rm -f "$log"; }
show delete --force $id
