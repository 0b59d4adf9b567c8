#!/usr/bin/env bash
# Test-only system dependency: Debian's Chromium, for the docs-site screenshot test.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
if command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium (Debian package) for the docs test"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
else
  echo "no apt-get: install Chromium yourself to run tests/test_docs.py" >&2
fi
