#!/usr/bin/env bash
# Create or refresh the test venv at <repo>/.venv from tests/sdk/python/requirements.txt.
# Reinstalls only when the requirements file changed (stamp file inside the venv).
# Usage: scripts/python-env.sh            (env PYTHON=python3.11 to pick the interpreter)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
REQ=tests/sdk/python/requirements.txt
STAMP="$VENV/.requirements.sha256"

if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
    echo "python-env: $PYTHON is older than 3.10; set PYTHON to a newer interpreter" >&2
    exit 1
fi

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    echo "python-env: creating $VENV with $("$PYTHON" --version)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
    echo "python-env: installing $REQ"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$REQ"
    echo "$want" > "$STAMP"
else
    echo "python-env: $VENV is up to date"
fi

"$VENV/bin/temporal" --version
