#!/usr/bin/env bash
# Debian packages the test suite needs (tests/e2e): Chromium for the UI browser test, and
# the production layout of docker-compose.yaml run natively -- PostgreSQL (the metadata DB)
# and Redis (the Celery broker). Idempotent and quiet when everything is already there.
# Called by `make test`. The e2e tests skip, saying which package is missing, without them.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# Debian's server binaries live in /usr/lib/postgresql/<major>/bin, not on PATH.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "==> not a Debian machine: install ${missing[*]} yourself (the e2e tests that need them skip)" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "==> not root and no passwordless sudo: run 'apt-get install ${missing[*]}' (the e2e tests that need them skip)" >&2
        exit 0
    fi
fi
echo "==> installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d 101: the packages' own services (the system cluster on :5432, redis on :6379)
# are not started; the tests start throwaway instances on free ports.
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    created_policy=1
fi
trap '[ -z "$created_policy" ] || $SUDO rm -f "$policy"' EXIT
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
