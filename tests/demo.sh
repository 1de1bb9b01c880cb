#!/bin/sh
# make demo: mailwatch end to end against a private Dovecot on 127.0.0.1,
# with a private session bus and the recording notification server. The
# work is in tests/lib/demo.py, which stops everything it started (by pid)
# however it ends; the timeout bounds the whole run.
cd "$(dirname "$0")/.." || exit 1
PYTHON="${PYTHON:-/usr/bin/python3}"
if command -v timeout >/dev/null 2>&1; then
	exec timeout -k 10 "${DEMO_TIMEOUT:-240}" "$PYTHON" tests/lib/demo.py "$@"
fi
exec "$PYTHON" tests/lib/demo.py "$@"
