#!/usr/bin/env bash
# The project's one test command (`make test`, `.ci/run`): sets up everything a fresh
# machine needs, then runs pytest with any extra args, e.g. `scripts/test.sh -k presence`.
# Idempotent and fast on re-runs: installs are skipped while their inputs are unchanged.
# VENV_ONLY=1 stops after the venv step (used by `make serve` / `make lint`).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "test.sh: $*" >&2; }
py_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

# 1. Python venv in .venv (python3 >= 3.11; PYTHON=... picks a specific interpreter).
if [ ! -x .venv/bin/python ] || ! py_ok .venv/bin/python; then
    for py in ${PYTHON:-} python3 python3.13 python3.12 python3.11 ""; do
        [ -n "$py" ] && command -v "$py" >/dev/null && py_ok "$py" && break
    done
    [ -n "$py" ] || { log "need python3 >= 3.11 (set PYTHON=/path/to/python3.x)"; exit 1; }
    log "creating .venv with $py"
    if ! "$py" -m venv --clear .venv; then
        # Debian ships venv separately (python3-venv); install it when we may
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get install -y python3-venv || { apt-get update && apt-get install -y python3-venv; }
            "$py" -m venv --clear .venv
        else
            log "python venv module missing: sudo apt-get install -y python3-venv"; exit 1
        fi
    fi
fi

# 2. The package with all drivers and test tools. The stamp is a copy of the pyproject.toml
#    last installed, so content changes (not mtimes, which git checkouts reset) trigger it.
if ! cmp -s pyproject.toml .venv/.pyproject.installed || [ ! -x .venv/bin/sockudo-py ]; then
    log "pip install -e '.[all,test]'"
    .venv/bin/python -m pip install --disable-pip-version-check -q -e '.[all,test]'
    cp pyproject.toml .venv/.pyproject.installed
fi
[ -z "${VENV_ONLY:-}" ] || exit 0

# 3. Node test clients. Skipped only while tests/node/package.json doesn't exist; once it
#    does, npm ci failures are fatal. `npm ci` wipes node_modules, so the stamp lives there.
if [ -f tests/node/package.json ]; then
    if ! cmp -s tests/node/package-lock.json tests/node/node_modules/.package-lock.installed; then
        command -v npm >/dev/null || { log "tests/node needs npm (apt-get install -y nodejs npm)"; exit 1; }
        log "npm ci in tests/node"
        (cd tests/node && npm ci --no-audit --no-fund)
        cp tests/node/package-lock.json tests/node/node_modules/.package-lock.installed
    fi
else
    log "tests/node/package.json not there yet: skipping npm ci"
fi

# 4. Redis, NATS and MariaDB on loopback (started/installed if missing).
scripts/services.sh

# 5. The suite; exec so pytest's exit code is ours.
exec .venv/bin/python -m pytest "$@"
