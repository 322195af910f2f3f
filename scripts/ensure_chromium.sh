#!/usr/bin/env bash
# Debian's chromium for the browser tests (Playwright's own browser download cannot work offline).
set -u
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian chromium for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium fonts-dejavu-core >/dev/null || echo "warning: chromium install failed"
else
  echo "note: /usr/bin/chromium missing and cannot apt-get here; browser tests will fail" >&2
fi
