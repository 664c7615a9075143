#!/bin/sh
# screenshot.sh — makes the screenshots of the operator page in docs/: docs/web-page.png
# (the overview of a live pool: completed jobs with their thumbnails, a pause, dead
# letters) and docs/web-<view>.png for every view (overview, dead, queued, inflight,
# uncertain, audit, job, the dead letters at phone width: web-phone.png; the history charts:
# web-history.png; a queued view after a cancel: web-queued-cancel.png; the Spend view:
# web-spend.png, and at phone width web-spend-phone.png), in headless
# Chromium, by running the page's system tests with KIE_SCREENSHOT / KIE_SCREENSHOT_DIR set.
# The views' screenshots show a seeded pool whose entries carry markup (it must show as
# text: that is what the test checks). The charts' runs use KIE's real createTask limit,
# 20 per 10 s (test_web_views.py's SHOT_LIMITS), so the slots chart is readable.
#   scripts/screenshot.sh [DIR]     (default docs/; needs `make`)
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(realpath -m "${1:-$HERE/docs}")
mkdir -p "$OUT"
cd "$HERE"
export KIE_BIN_DIR="${KIE_BIN_DIR:-$HERE/build}"
KIE_SCREENSHOT="$OUT/web-page.png" \
	/usr/bin/python3 -m pytest -q tests/system/test_web.py -k chromium
KIE_SCREENSHOT_DIR="$OUT" /usr/bin/python3 -m pytest -q tests/system/test_web_views.py \
	-k "every_view or search_by_task or live_charts or history_charts or cancel_from"
KIE_SCREENSHOT_DIR="$OUT" /usr/bin/python3 -m pytest -q tests/system/test_web_spend.py \
	-k "budget_set or markup"
echo "screenshots: $OUT/web-*.png"
