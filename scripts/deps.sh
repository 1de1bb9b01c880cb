#!/bin/sh
# Installs the Debian packages a target needs when they are missing (as
# root), or says which apt-get line to run.
# Usage: deps.sh build|check|fuzz|popup
set -eu

build="gcc make pkg-config libc6-dev libssl-dev libsystemd-dev"
# Everything make check uses, so that no test skips on a fresh machine: a
# real popup (xvfb, dunst, a font), a status bar (i3-wm, i3blocks) and man
# page checks (man-db, mandoc) included.
check="$build dovecot-imapd dovecot-core openssl python3 dbus-daemon procps \
xvfb dunst fonts-dejavu-core i3-wm i3blocks man-db mandoc strace"
fuzz="$build clang libclang-rt-14-dev"
popup="$check"

case "${1:-build}" in
build) want=$build ;;
check) want=$check ;;
fuzz) want=$fuzz ;;
popup) want=$popup ;;
*) echo "usage: $0 build|check|fuzz|popup" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "mailwatch: missing packages; run as root:" >&2
	echo "  apt-get install -y$missing" >&2
	exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# Dovecot's package starts a system instance; the tests never use it.
if ! apt-get install -y --no-install-recommends $missing; then
	apt-get update && apt-get install -y --no-install-recommends $missing
fi
