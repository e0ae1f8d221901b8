# Shared by tests/e2e/*.sh: TAP-style checks. Each script sets fail=0 n=0 first.
check() { # check NAME WANT GOT
  n=$((n+1))
  if [ "$2" = "$3" ]; then echo "ok $n - $1"; else echo "not ok $n - $1: want [$2] got [$3]"; fail=1; fi
}
has() { # has NAME NEEDLE HAYSTACK
  n=$((n+1))
  case "$3" in *"$2"*) echo "ok $n - $1";; *) echo "not ok $n - $1: [$2] not in [$3]"; fail=1;; esac
}
