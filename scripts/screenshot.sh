#!/bin/sh
# screenshot.sh — makes docs/web-page.png: the operator page of a live pool (a few
# completed jobs with their thumbnails, a paused queue, dead letters) in headless
# Chromium, by running the page's system test with KIE_SCREENSHOT set.
#   scripts/screenshot.sh [OUT.png]     (default docs/web-page.png; needs `make`)
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(realpath -m "${1:-$HERE/docs/web-page.png}")
cd "$HERE"
KIE_SCREENSHOT="$OUT" KIE_BIN_DIR="${KIE_BIN_DIR:-$HERE/build}" \
	/usr/bin/python3 -m pytest -q tests/system/test_web.py -k chromium
echo "screenshot: $OUT"
