/* log.h — one-line-per-event logging: timestamp, level, job id, task id; text or JSON. */
#ifndef KIE_LOG_H
#define KIE_LOG_H

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

#endif
