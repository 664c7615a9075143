#!/bin/sh
# install-deps.sh — install every Debian package the build, the demo and the tests need.
# Idempotent: packages already present are skipped; nothing is fetched when all are there.
set -eu

PKGS="build-essential pkg-config
libhiredis-dev libcurl4-openssl-dev libcjson-dev libmicrohttpd-dev libssl-dev libcmocka-dev
xz-utils patch ca-certificates openssl
clang libclang-rt-14-dev
redis-server redis-tools redis-sentinel
python3 python3-pytest python3-pytest-xdist python3-redis python3-botocore python3-prometheus-client python3-pil
nodejs npm curl docker-compose python3-yaml
groff-base man-db systemd
chromium chromium-driver python3-selenium"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

HERE=$(cd "$(dirname "$0")" && pwd)

# The Node producer example's client library (npm registry), once.
node_deps() {
	if [ ! -d "$HERE/node/node_modules/redis" ] && command -v npm >/dev/null 2>&1; then
		echo "install-deps: npm ci in scripts/node"
		(cd "$HERE/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	fi
}

# hiredis >= 1.0 with hiredis_ssl (TLS to Redis): bookworm's is 0.14.1, so Debian trixie's
# 1.2.0 source package is built into build/deps/hiredis (docs/tls.md), once.
hiredis_tls() {
	if ! pkg-config --exists 'hiredis >= 1.0' hiredis_ssl 2>/dev/null; then
		"$HERE/build-hiredis.sh"
	fi
}

if [ -z "$missing" ]; then
	node_deps
	hiredis_tls
	echo "install-deps: all packages present"
	exit 0
fi

# node and npm may come from outside Debian on some images: accept them when on PATH.
still=""
for p in $missing; do
	case "$p" in
	nodejs) command -v node >/dev/null 2>&1 && continue ;;
	npm) command -v npm >/dev/null 2>&1 && continue ;;
	esac
	still="$still $p"
done
[ -z "$still" ] && { node_deps; hiredis_tls; echo "install-deps: all packages present"; exit 0; }

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing:$still"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $still >/dev/null
node_deps
hiredis_tls
echo "install-deps: done"
