#!/usr/bin/env bash
# Install PostgreSQL's server binaries (Debian's package) if they are missing. The tests start and stop
# their own throwaway server on loopback (promptrec/testing/postgres_local.py); nothing is left running.
set -euo pipefail
if command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  echo "promptrec: PostgreSQL server binaries present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "promptrec: installing Debian's postgresql (server binaries for the event-store tests)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
# Debian's package starts a cluster service where systemd runs; the tests need none: stop it if it runs.
$SUDO pg_ctlcluster --force "$(ls /usr/lib/postgresql | sort -n | tail -1)" main stop 2>/dev/null || true
