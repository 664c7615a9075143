#!/bin/sh
# replay-known.sh — replays each fuzz/known/<target>--<invariant>[--<what>] with the
# known-bug skip off: KNOWN while it still breaks its invariant, FIXED once it passes (then
# drop it from fuzz/invariant.c's list). A second input for one invariant gets a
# --<what> suffix. Exits 0 either way.
B=build/fuzz
for f in fuzz/known/*--*; do
	n=${f##*/}
	t=${n%%--*}
	inv=${n#*--}
	inv=${inv%%--*}
	out=$(FUZZ_KNOWN_BUGS=0 "$B/$t" "$f" 2>&1)
	if [ $? -eq 0 ]; then
		printf '  FIXED  %-32s %s passes\n' "$inv" "$f"
	elif printf '%s\n' "$out" | grep -aq "INVARIANT $inv violated\|runtime error"; then
		printf '  KNOWN  %-32s %s\n' "$inv" \
			"$(printf '%s\n' "$out" | grep -a -m1 "INVARIANT\|runtime error" | cut -c1-150)"
	else
		printf '  OTHER  %-32s breaks something else:\n' "$inv"
		printf '%s\n' "$out" | grep -a -m3 "INVARIANT\|ERROR"
	fi
done
