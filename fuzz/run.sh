#!/bin/sh
# run.sh — runs one fuzz target for a while on its seeds and what earlier runs found;
# prints one summary line, or the log's tail and the saved input when it fails.
#   fuzz/run.sh TARGET SECONDS MAX_LEN     (from the top directory; make fuzz calls it)
set -u
t=$1 secs=$2 maxlen=$3
B=build/fuzz
mkdir -p "$B/corpus/$t" "$B/artifacts" "$B/logs"
case "$t" in
fuzz_url | fuzz_endpoint) dict=fuzz/dict/url.dict ;;
fuzz_admin) dict=fuzz/dict/admin.dict ;;
*) dict=fuzz/dict/json.dict ;;
esac
log=$B/logs/$t.log
# the first corpus directory collects new inputs; the seeds in fuzz/corpus stay untouched
"$B/$t" -max_total_time="$secs" -max_len="$maxlen" -rss_limit_mb=2048 -timeout=25 \
	-print_final_stats=1 -dict="$dict" -artifact_prefix="$B/artifacts/$t-" \
	"$B/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
if [ "$rc" -eq 0 ]; then
	printf '  FUZZ   %-20s %4s s  %9s executions  %6s/s  known bugs skipped: %s\n' "$t" \
		"$secs" "${execs:-?}" "${rate:-?}" "${FUZZ_KNOWN_BUGS:-0}"
	exit 0
fi
tail -n 40 "$log"
echo "FAILED: $t (exit $rc); full log $log; the input is in $B/artifacts/$t-*"
echo "  replay: FUZZ_KNOWN_BUGS=${FUZZ_KNOWN_BUGS:-0} $B/$t $B/artifacts/$t-<file>"
exit 1
