#!/usr/bin/env bash
# Debian packages the test suite needs: Chromium for the UI browser test (tests/e2e).
# Idempotent and quiet when everything is already there. Called by `make test`.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "==> not a Debian machine: install ${missing[*]} yourself (the browser test skips without it)" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "==> not root and no passwordless sudo: run 'apt-get install ${missing[*]}' (the browser test skips without it)" >&2
        exit 0
    fi
fi
echo "==> installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
