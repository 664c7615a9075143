/* log.h — one-line-per-event logging: timestamp, level, job id, task id; text or JSON.
 *
 * Must not: be handed a secret (callers never pass one), or format a line below the
 * active level. */
#ifndef KIE_LOG_H
#define KIE_LOG_H

#include <stdatomic.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

/* Process-wide settings; call before threads start. Output goes to stderr. */
void log_setup(enum log_level level, enum log_format format);
extern enum log_level log_active_level;

const char *log_level_str(enum log_level level);
/* Parses "debug|info|warn|error"; returns 0 or -1. */
int log_level_parse(const char *s, enum log_level *out);

/* job_id and task_id may be NULL. Thread-safe: each line is written with one write(2). */
void log_emit(enum log_level level, const char *job_id, const char *task_id,
	      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The macros skip formatting below the active level. */
#define LOG_AT(lvl, job, task, ...)                                        \
	do {                                                               \
		if ((lvl) >= log_active_level)                             \
			log_emit((lvl), (job), (task), __VA_ARGS__);       \
	} while (0)
#define log_debug(job, task, ...) LOG_AT(LOG_DEBUG, job, task, __VA_ARGS__)
#define log_info(job, task, ...) LOG_AT(LOG_INFO, job, task, __VA_ARGS__)
#define log_warn(job, task, ...) LOG_AT(LOG_WARN, job, task, __VA_ARGS__)
#define log_error(job, task, ...) LOG_AT(LOG_ERROR, job, task, __VA_ARGS__)

/* A line for an event that may come thousands of times a second (a refused request):
 * at most one every interval_ms; the others are counted, and the next line written says
 * how many were not. Lock-free; a static one is set up with LOG_EVERY_INIT(ms). */
struct log_every {
	atomic_llong next_ms; /* monotonic: the next line may be written from then on */
	atomic_ulong quiet;   /* events not written since the last line */
	long interval_ms;
};
#define LOG_EVERY_INIT(ms) {0, 0, (ms)}

/* 1: write a line now, *quiet = how many were not written since the last one; 0: this
 * one is counted instead. */
int log_every_take(struct log_every *e, unsigned long *quiet);

#endif
