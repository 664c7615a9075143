/* history.h — the keys of the history counters (docs/protocol.md, "History"): one hash
 * per minute, <p>:hist:m:<epoch minute> (48 h), and one per UTC day,
 * <p>:hist:d:<yyyymmdd> (90 days), written by the scripts that already count
 * (lib/history.lua) and read by the operator page's charts (ops/history_view.h).
 *
 * Must not: write; the scripts do. */
#ifndef KIE_HISTORY_H
#define KIE_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#define HISTORY_KEY_MAX 200
#define HISTORY_MINUTES 2880  /* 48 h of minute hashes */
#define HISTORY_DAYS 90

/* <prefix>:hist:m:<minute of now_ms> and <prefix>:hist:d:<UTC day of now_ms>. */
void history_keys(const char *prefix, int64_t now_ms, char kmin[HISTORY_KEY_MAX],
		  char kday[HISTORY_KEY_MAX]);
/* <prefix>:hist:m:<minute> for an epoch minute. */
void history_minute_key(const char *prefix, int64_t minute, char out[HISTORY_KEY_MAX]);
/* <prefix>:hist:d:<yyyymmdd> of the UTC day holding epoch second day_s. */
void history_day_key(const char *prefix, int64_t day_s, char out[HISTORY_KEY_MAX]);

#endif
