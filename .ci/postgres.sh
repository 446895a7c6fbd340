#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for the store's tests (Debian's postgresql package); prints
# its URL on stdout. `bash .ci/postgres.sh stop` stops every server it started and removes their data.
set -euo pipefail
if [ "${1:-}" = stop ]; then
  for data in /tmp/sdshape-pg.*; do
    [ -d "$data" ] || continue
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$bin/pg_ctl" -D "$data" -m fast stop >/dev/null || true
    else "$bin/pg_ctl" -D "$data" -m fast stop >/dev/null || true; fi
    rm -rf "$data"
  done
  exit 0
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "installing Debian's postgresql package" >&2
  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql) >&2
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PORT=${SDSHAPE_PG_PORT:-55432}
DATA=$(mktemp -d /tmp/sdshape-pg.XXXXXX)
AS=()
if [ "$(id -u)" = 0 ]; then  # the server refuses to run as root
  chown postgres "$DATA"
  AS=(runuser -u postgres --)
fi
"${AS[@]}" "$BIN/initdb" -D "$DATA" -A trust -U postgres >/dev/null
"${AS[@]}" "$BIN/pg_ctl" -D "$DATA" -l "$DATA/log" -w \
  -o "-p $PORT -k $DATA -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
echo "PostgreSQL on port $PORT, data in $DATA" >&2
echo "postgresql://postgres@127.0.0.1:$PORT/postgres"
