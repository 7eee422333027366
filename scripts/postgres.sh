#!/usr/bin/env bash
# Makes sure a local PostgreSQL accepts postgres@127.0.0.1:5432/test without a password,
# starting the cluster if it is down. Installs PostgreSQL only where none exists.
set -euo pipefail

url=${VOICEGATE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
ready() { psql "$url" -Atqc "select 1" >/dev/null 2>&1; }
ready && exit 0

if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  echo "postgres: installing PostgreSQL"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fresh=1
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
if [ "${fresh:-0}" = 1 ]; then
  # A cluster installed here only for tests: trust local TCP connections like CI machines do.
  hba=/etc/postgresql/$version/main/pg_hba.conf
  sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
fi
pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
for _ in $(seq 1 30); do
  psql postgres://postgres@127.0.0.1:5432/postgres -Atqc "select 1" >/dev/null 2>&1 && break
  sleep 1
done
psql postgres://postgres@127.0.0.1:5432/postgres -Atqc \
  "select 1 from pg_database where datname = 'test'" | grep -q 1 ||
  psql postgres://postgres@127.0.0.1:5432/postgres -qc "create database test"
ready || { echo "postgres: $url is not reachable" >&2; exit 1; }
