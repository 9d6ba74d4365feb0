#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on 127.0.0.1, for the tests (scripts/test.sh) and for trying the
# server setup on one machine (scripts/cluster.sh).
#
#   scripts/pg_temp.sh start DIR PORT   initdb in DIR (empty, e.g. from mktemp -d; as root, `nobody`
#                                       must be able to reach it), start it on
#                                       PORT; prints postgresql://rag:PASSWORD@127.0.0.1:PORT/postgres
#   scripts/pg_temp.sh stop DIR         stop it (fast) and delete DIR
#
# Installs Debian's postgresql when initdb is missing (apt-get, as root or through sudo).
# initdb and pg_ctl refuse to run as root: as root the cluster belongs to `nobody`.
# Password authentication (scram-sha-256), so a wrong password is refused as on a real server.
set -euo pipefail
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"

as_owner() {  # run a command as the cluster's owner
  if [ "$(id -u)" = 0 ]; then su -s /bin/bash nobody -c "$*"; else bash -c "$*"; fi
}

start() {
  local dir="$1" port="$2"
  if [ ! -x "$PGBIN/initdb" ]; then
    echo "pg_temp: installing Debian postgresql" >&2
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
    # Debian's package starts a cluster of its own on 5432; the tests do not use it.
  fi
  mkdir -p "$dir"
  local password
  password="$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  printf '%s\n' "$password" >"$dir/pwfile"
  if [ "$(id -u)" = 0 ]; then chown -R nobody "$dir"; fi
  as_owner "'$PGBIN/initdb' -D '$dir/data' -U rag -E UTF8 --no-locale --auth=scram-sha-256 --pwfile='$dir/pwfile'" >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  as_owner "'$PGBIN/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w -t 60 \
    -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200\" start" >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  echo "postgresql://rag:$password@127.0.0.1:$port/postgres"
}

stop() {
  local dir="$1"
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "'$PGBIN/pg_ctl' -D '$dir/data' -m fast -w stop" >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  start) start "$2" "$3" ;;
  stop) stop "$2" ;;
  *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
