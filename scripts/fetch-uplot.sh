#!/bin/sh
# fetch-uplot.sh — the operator page's charting library, uPlot, pinned and checked by hash.
# The copy the page serves is committed in worker/web/vendor/ (embedded into kie-worker at
# build time like the page's own files, served under the page's CSP); this script is how
# it got there and how it is checked:
#   scripts/fetch-uplot.sh --check   the vendored files match the pinned SHA-256 sums
#                                    (offline; `make test` runs it)
#   scripts/fetch-uplot.sh --fetch   downloads the pinned tarball from the npm registry,
#                                    checks its SHA-256 (and npm's sha512 integrity), and
#                                    writes the three files into worker/web/vendor/
# To move to another version: change VERSION and the sums below (npm view uplot@X
# dist.tarball dist.integrity gives the registry's; the file sums are printed by --fetch
# when they differ), run --fetch, read the diff, commit.
set -eu

VERSION=1.6.32
TARBALL_URL="https://registry.npmjs.org/uplot/-/uplot-$VERSION.tgz"
TARBALL_SHA256=4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d
TARBALL_INTEGRITY="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=="
# file in the tarball : file in worker/web/vendor : SHA-256
FILES="package/dist/uPlot.iife.min.js:uPlot.iife.min.js:19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f
package/dist/uPlot.min.css:uPlot.min.css:df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04
package/LICENSE:uPlot.LICENSE:8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd"

HERE=$(cd "$(dirname "$0")/.." && pwd)
VENDOR="$HERE/worker/web/vendor"

sha256() { sha256sum "$1" | cut -d' ' -f1; }

check() { # $1: the folder holding the files under their vendored names
	bad=0
	for line in $FILES; do
		name=$(echo "$line" | cut -d: -f2)
		want=$(echo "$line" | cut -d: -f3)
		if [ ! -f "$1/$name" ]; then
			echo "fetch-uplot: $1/$name is missing" >&2
			bad=1
			continue
		fi
		got=$(sha256 "$1/$name")
		if [ "$got" != "$want" ]; then
			echo "fetch-uplot: $name: SHA-256 $got, pinned $want (uPlot $VERSION)" >&2
			bad=1
		fi
	done
	return $bad
}

case "${1:-}" in
--check)
	check "$VENDOR"
	echo "fetch-uplot: worker/web/vendor holds uPlot $VERSION as pinned"
	;;
--fetch)
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	curl -fsSL --max-time 120 -o "$tmp/uplot.tgz" "$TARBALL_URL"
	got=$(sha256 "$tmp/uplot.tgz")
	if [ "$got" != "$TARBALL_SHA256" ]; then
		echo "fetch-uplot: the tarball's SHA-256 is $got, pinned $TARBALL_SHA256: refused" >&2
		exit 1
	fi
	integrity="sha512-$(openssl dgst -sha512 -binary "$tmp/uplot.tgz" | openssl base64 -A)"
	if [ "$integrity" != "$TARBALL_INTEGRITY" ]; then
		echo "fetch-uplot: the tarball's integrity is $integrity, npm's $TARBALL_INTEGRITY" >&2
		exit 1
	fi
	tar -xzf "$tmp/uplot.tgz" -C "$tmp"
	mkdir -p "$tmp/out"
	for line in $FILES; do
		cp "$tmp/$(echo "$line" | cut -d: -f1)" "$tmp/out/$(echo "$line" | cut -d: -f2)"
	done
	check "$tmp/out"
	mkdir -p "$VENDOR"
	cp "$tmp"/out/* "$VENDOR/"
	echo "fetch-uplot: uPlot $VERSION written to worker/web/vendor"
	;;
*)
	echo "usage: scripts/fetch-uplot.sh --check | --fetch" >&2
	exit 2
	;;
esac
