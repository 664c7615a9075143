/* history.c — the history counters' keys (history.h). */
#include "pool/history.h"

#include <stdio.h>
#include <time.h>

void history_minute_key(const char *prefix, int64_t minute, char out[HISTORY_KEY_MAX])
{
	snprintf(out, HISTORY_KEY_MAX, "%s:hist:m:%lld", prefix, (long long)minute);
}

void history_day_key(const char *prefix, int64_t day_s, char out[HISTORY_KEY_MAX])
{
	time_t t = (time_t)day_s;
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, HISTORY_KEY_MAX, "%s:hist:d:%04d%02d%02d", prefix, tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday);
}

void history_keys(const char *prefix, int64_t now_ms, char kmin[HISTORY_KEY_MAX],
		  char kday[HISTORY_KEY_MAX])
{
	history_minute_key(prefix, now_ms / 60000, kmin);
	history_day_key(prefix, now_ms / 1000, kday);
}
