#!/bin/sh
# build-hiredis.sh — builds hiredis 1.2.0 with TLS (hiredis_ssl) from Debian trixie's source
# package into a repo-local prefix, as static libraries, for systems whose hiredis is older
# than 1.0 (Debian bookworm ships 0.14.1, without TLS). The Makefile links it when present.
#
#   scripts/build-hiredis.sh [PREFIX]     default PREFIX: build/deps/hiredis (in the repo)
#
# The three files of the source package come from deb.debian.org's pool, over HTTPS, and
# are checked against SHA-256 sums pinned here (the .dsc's own sums are checked too), so a
# changed or truncated download stops the build. Debian's patches are applied in the
# order of debian/patches/series; the build is upstream's Makefile with USE_SSL=1, as
# Debian's debian/rules does. Idempotent: nothing is done when PREFIX already holds this
# version. Needs: curl, tar, xz, patch, make, cc, libssl-dev (install-deps.sh has them).
set -eu

VERSION=1.2.0
DEBREV=6
POOL=https://deb.debian.org/debian/pool/main/h/hiredis
DSC=hiredis_${VERSION}-${DEBREV}.dsc
ORIG=hiredis_${VERSION}.orig.tar.gz
DEB=hiredis_${VERSION}-${DEBREV}.debian.tar.xz
SHA_DSC=9e14f474f15d92c7ad1c9cb7c9ad0f1f8cc202492503103973f1fc08361d1cc6
SHA_ORIG=82ad632d31ee05da13b537c124f819eb88e18851d9cb0c30ae0552084811588c
SHA_DEB=b0f46b0d467507ee3e1f165664484528e0f8ff33691cbdd19bf85fc96e604187

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PREFIX=${1:-$ROOT/build/deps/hiredis}
case "$PREFIX" in /*) ;; *) PREFIX=$(pwd)/$PREFIX ;; esac
STAMP="$PREFIX/.built-$VERSION-$DEBREV"

# built, and for this path (the .pc files hold it: a moved checkout builds again)
if [ -f "$STAMP" ] && [ -f "$PREFIX/lib/libhiredis_ssl.a" ] && [ -f "$PREFIX/lib/libhiredis.a" ] &&
	grep -qxF "prefix=$PREFIX" "$PREFIX/lib/pkgconfig/hiredis.pc" 2>/dev/null; then
	echo "build-hiredis: hiredis $VERSION-$DEBREV already in $PREFIX"
	exit 0
fi

for tool in curl tar xz patch make cc sha256sum; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "build-hiredis: $tool is missing (scripts/install-deps.sh installs it)" >&2
		exit 1
	}
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/build-hiredis.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM

fetch() { # file sha256
	echo "build-hiredis: fetching $POOL/$1"
	curl -fsSL --proto '=https' --retry 3 --max-time 300 -o "$WORK/$1" "$POOL/$1" || {
		echo "build-hiredis: could not download $POOL/$1" >&2
		exit 1
	}
	got=$(sha256sum "$WORK/$1" | cut -d' ' -f1)
	if [ "$got" != "$2" ]; then
		echo "build-hiredis: $1 has SHA-256 $got, expected $2: refusing to build it" >&2
		exit 1
	fi
}
fetch "$DSC" "$SHA_DSC"
fetch "$ORIG" "$SHA_ORIG"
fetch "$DEB" "$SHA_DEB"

# the .dsc (pinned above) lists the sums of the other two: they must agree with it
for f in "$ORIG" "$DEB"; do
	sum=$(sha256sum "$WORK/$f" | cut -d' ' -f1)
	grep -q "^ $sum [0-9]* $f\$" "$WORK/$DSC" || {
		echo "build-hiredis: $f does not match the sums in $DSC" >&2
		exit 1
	}
done

cd "$WORK"
tar xzf "$ORIG"
SRC="$WORK/hiredis-$VERSION"
[ -d "$SRC" ] || { echo "build-hiredis: $ORIG did not unpack to hiredis-$VERSION" >&2; exit 1; }
tar xJf "$DEB" -C "$SRC"
if [ -f "$SRC/debian/patches/series" ]; then
	grep -v '^[[:space:]]*\(#\|$\)' "$SRC/debian/patches/series" | while read -r p _; do
		echo "build-hiredis: applying debian/patches/$p"
		patch -s -p1 -d "$SRC" < "$SRC/debian/patches/$p"
	done
fi

# Static libraries only (the .so files are removed from PREFIX), so binaries linked against
# them need no hiredis at run time; -fPIC comes with upstream's flags either way.
JOBS=$(nproc 2>/dev/null || echo 2)
make -s -C "$SRC" -j"$JOBS" USE_SSL=1 DEBUG="-g" ARCH= static >/dev/null
rm -rf "$PREFIX"
make -s -C "$SRC" USE_SSL=1 PREFIX="$PREFIX" LIBRARY_PATH=lib install >/dev/null
rm -f "$PREFIX"/lib/*.so "$PREFIX"/lib/*.so.*
[ -f "$PREFIX/lib/libhiredis_ssl.a" ] && [ -f "$PREFIX/lib/pkgconfig/hiredis_ssl.pc" ] || {
	echo "build-hiredis: the build did not leave libhiredis_ssl.a and its .pc in $PREFIX" >&2
	exit 1
}
touch "$STAMP"
echo "build-hiredis: hiredis $VERSION-$DEBREV (USE_SSL=1, static) installed in $PREFIX"
