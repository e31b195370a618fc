#!/usr/bin/env bash
# Install Debian's chromium for the console's browser tests (tests/test_ui.py drives it with Playwright).
# Idempotent: nothing to do when /usr/bin/chromium exists. Never `playwright install`: the tests use this one.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "promptrec: chromium present ($(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium))"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "promptrec: installing Debian's chromium (browser tests of the web console)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
/usr/bin/chromium --version
