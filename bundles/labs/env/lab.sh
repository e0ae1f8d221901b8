#!/bin/bash
# Lab 3 — env: process.env is the container's whole environment (docker run -e), and an env
# file becomes --env flags (docker run --env-file). Nothing of the caller's environment leaks in.
. "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
id=lab-env
cleanup $id

export HOST_SECRET=only-on-the-host
echo "# the caller has HOST_SECRET=$HOST_SECRET in its environment"
echo "# config.json:"
sed -n '/"env"/,/\]/p' config.json
show run -d --bundle . $id
for i in $(seq 100); do [ -n "$(onggi ps $id --format json | tr -d '[]')" ] && break; sleep 0.05; done
echo "# the init's environment, from the host: /proc/<pid>/environ"
tr '\0' '\n' < /proc/$(pid_of $id)/environ | sort
echo "# app.env, one KEY=VALUE per line:"
cat app.env
args=()
while IFS= read -r line; do
  case $line in ''|'#'*) continue ;; esac
  args+=(--env "$line")
done < app.env
show exec "${args[@]}" $id sh -c 'echo "DB_HOST=$DB_HOST DB_PORT=$DB_PORT GREETING=$GREETING HOST_SECRET=${HOST_SECRET:-(unset)}"'
show delete --force $id
