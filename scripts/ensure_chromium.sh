#!/usr/bin/env bash
# Make sure Debian's Chromium is there for the browser tests (tests/browser).
# Playwright's own browser download cannot work offline, so the tests drive /usr/bin/chromium
# (or $VITDREAM_CHROMIUM). Idempotent and cheap when Chromium is already installed: safe to run
# before every `make test`. Installs with apt-get as root, or through `sudo -n` where allowed.
# Exits 0 with a loud warning when it cannot install (the non-browser tests still run; the browser
# tests then fail with a message naming this script). Set VITDREAM_CHROMIUM_STRICT=1 to exit 1 instead.
set -u

CHROMIUM="${VITDREAM_CHROMIUM:-/usr/bin/chromium}"
STRICT="${VITDREAM_CHROMIUM_STRICT:-0}"

works() {
  # Debian's wrapper script prints the version; a half-installed package fails here.
  [ -x "$CHROMIUM" ] && "$CHROMIUM" --version 2>/dev/null | grep -qi chrom
}

give_up() {
  echo "WARNING: $1" >&2
  echo "WARNING: the browser tests (pytest -m browser) will fail until Chromium is installed:" >&2
  echo "WARNING:   sudo apt-get install -y chromium fonts-dejavu-core" >&2
  [ "$STRICT" = "1" ] && exit 1
  exit 0
}

if works; then
  exit 0
fi

if [ "$CHROMIUM" != "/usr/bin/chromium" ]; then
  give_up "VITDREAM_CHROMIUM=$CHROMIUM does not run; not installing anything for a custom path"
fi

if ! command -v apt-get >/dev/null 2>&1; then
  give_up "no apt-get on this machine; install Chromium with your package manager and set VITDREAM_CHROMIUM"
fi

if [ "$(id -u)" = "0" ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  give_up "$CHROMIUM missing and no root/sudo to apt-get it"
fi

export DEBIAN_FRONTEND=noninteractive
APT=("${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
echo "installing Debian chromium for the browser tests (apt-get)"
for attempt in 1 2; do
  if "${APT[@]}" update -qq && \
     "${APT[@]}" install -y -qq chromium fonts-dejavu-core >/dev/null; then
    break
  fi
  echo "apt-get attempt $attempt failed" >&2
  sleep 5
done

if works; then
  echo "chromium ready: $("$CHROMIUM" --version 2>/dev/null)"
  exit 0
fi
give_up "installing chromium with apt-get failed"
