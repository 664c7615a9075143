/* log.c — formats log lines (text or JSON lines) and writes each with a single write(2). */
#include "core/log.h"

#include "core/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum log_level log_active_level = LOG_INFO;
static enum log_format log_fmt = LOG_FORMAT_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(enum log_level level, enum log_format format)
{
	log_active_level = level;
	log_fmt = format;
}

const char *log_level_str(enum log_level level)
{
	if ((unsigned)level > LOG_ERROR)
		return "?";
	return level_names[level];
}

int log_every_take(struct log_every *e, unsigned long *quiet)
{
	long long now = (long long)util_monotonic_ms();
	long long next = atomic_load(&e->next_ms);

	if (now < next || !atomic_compare_exchange_strong(&e->next_ms, &next,
							  now + e->interval_ms)) {
		atomic_fetch_add(&e->quiet, 1);
		return 0;
	}
	*quiet = atomic_exchange(&e->quiet, 0);
	return 1;
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (int i = 0; i <= LOG_ERROR; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

/* Appends s JSON-escaped to buf at *pos, never past cap. */
static void json_escape_into(char *buf, size_t cap, size_t *pos, const char *s)
{
	for (; *s && *pos + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[(*pos)++] = '\\';
			buf[(*pos)++] = (char)c;
		} else if (c == '\n') {
			buf[(*pos)++] = '\\';
			buf[(*pos)++] = 'n';
		} else if (c < 0x20) {
			*pos += (size_t)snprintf(buf + *pos, cap - *pos, "\\u%04x", c);
		} else {
			buf[(*pos)++] = (char)c;
		}
	}
}

void log_emit(enum log_level level, const char *job_id, const char *task_id,
	      const char *fmt, ...)
{
	char msg[2048], line[4096], ts[UTIL_ISO8601_SIZE];
	va_list ap;
	size_t pos = 0;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	util_iso8601(util_now_ms(), ts);

	if (log_fmt == LOG_FORMAT_JSON) {
		pos = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\"",
				       ts, log_level_str(level));
		if (job_id) {
			pos += (size_t)snprintf(line + pos, sizeof(line) - pos, ",\"job\":\"");
			json_escape_into(line, sizeof(line), &pos, job_id);
			line[pos++] = '"';
		}
		if (task_id) {
			pos += (size_t)snprintf(line + pos, sizeof(line) - pos, ",\"task\":\"");
			json_escape_into(line, sizeof(line), &pos, task_id);
			line[pos++] = '"';
		}
		pos += (size_t)snprintf(line + pos, sizeof(line) - pos, ",\"msg\":\"");
		json_escape_into(line, sizeof(line), &pos, msg);
		if (pos + 3 > sizeof(line))
			pos = sizeof(line) - 3;
		line[pos++] = '"';
		line[pos++] = '}';
		line[pos++] = '\n';
	} else {
		int n = snprintf(line, sizeof(line), "%s %-5s job=%s task=%s %s\n", ts,
				 log_level_str(level), job_id ? job_id : "-",
				 task_id ? task_id : "-", msg);
		pos = n < 0 ? 0 : (size_t)n;
		if (pos >= sizeof(line)) {
			pos = sizeof(line) - 1;
			line[pos - 1] = '\n';
		}
	}
	if (write(STDERR_FILENO, line, pos) < 0) {
		/* nowhere left to report it */
	}
}
