#!/bin/sh
# Installs the Debian packages tern builds, tests and runs with, if any is missing.
# Used by `make run` and `make check`; safe to run again.
set -e
BUILD="cmake make gcc pkg-config libevent-dev libssl-dev libsqlite3-dev
libgmime-3.0-dev libc-ares-dev libcrypt-dev openssl"
TEST="python3 python3-pytest curl swaks libnet-ssleay-perl fetchmail getmail6 dnsmasq-base bsd-mailx isync mutt
strace"
case "${1:-all}" in
build) want="$BUILD" ;;
*) want="$BUILD $TEST" ;;
esac
missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
