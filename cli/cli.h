/* cli.h — what the files of `kie` (cli/) share: exit codes, the option parser, the set-up
 * from the environment, and one entry point per command (main.c dispatches). */
#ifndef KIE_CLI_H
#define KIE_CLI_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "config/config.h"
#include "kie/job.h"
#include "kie/kie_client.h"
#include "kie/prompts.h"
#include "pool/queue.h"
#include "redis/rconn.h"

/* Exit codes (documented in --help and docs/cli.md). */
enum {
	EXIT_OK = 0,
	EXIT_TASK_FAILED = 1,  /* the KIE task finished in state fail */
	EXIT_USAGE = 2,        /* bad arguments or configuration */
	EXIT_PERMANENT = 3,    /* KIE refused the request (400/404/422/451/505) or bad input */
	EXIT_RETRYABLE = 4,    /* try again later (429/455/5xx on reads/network/wait timeout) */
	EXIT_ACCOUNT = 5,      /* account-level (401/402/433) */
	EXIT_AMBIGUOUS = 6,    /* createTask may have created a task: do not re-run blindly */
	EXIT_STORE = 7,        /* the metadata store failed */
	EXIT_REDIS = 8,        /* Redis unreachable or refused the command */
	EXIT_NOT_FOUND = 9,    /* no such job or dead letter */
	EXIT_REFUSED = 10,     /* kie dead retry: an entry was refused (see its why) */
};


extern const char cli_exit_codes_help[];

/* ---- options: glibc's getopt_long ---- */
#define MAX_OPTS 64
struct opts {
	const char *name[MAX_OPTS];  /* the command's own options, in order */
	const char *value[MAX_OPTS]; /* an option without a value reads "1" */
	int n;
	const char *pos[8]; /* positional arguments */
	int npos;
	/* settings given as flags (redis-url, REDIS_URL): cli_ctx_open applies them over
	 * the environment, in order */
	const char *set_name[MAX_OPTS];
	const char *set_value[MAX_OPTS];
	int nset;
};

struct optspec {
	const char *name;
	int has_arg;
};

/* Fills o from argv (the arguments after the command's name) with getopt_long:
 * --name VALUE, --name=VALUE, --flag, -h for --help, a unique prefix of a long name; "--"
 * ends the options. With settings = 1 every setting of the config table is an option too,
 * by its flag or its environment name (--redis-url URL, --REDIS_URL=URL), as kie --help
 * promises; an option of spec with the same name is the command's. cmd names the command
 * in messages ("stats"). Returns 0, or -1 with the message printed. */
int cli_parse_opts(int argc, char **argv, const char *cmd, const struct optspec *spec,
		   int settings, struct opts *o);
/* The last value of --name, or NULL. */
const char *cli_opt(const struct opts *o, const char *name);
int cli_has(const struct opts *o, const char *name);

/* ---- set-up ---- */
struct cli_ctx {
	struct config cfg;
	struct kie_client *kie;
	struct prompts *prompts;
};
/* Loads the environment, then the settings o gives as flags (NULL: none); need_kie:
 * KIE_API_TOKEN required and a client made; need_prompts: templates loaded. -1 (message
 * printed): the caller still calls cli_ctx_close(). */
int cli_ctx_open(struct cli_ctx *c, const struct opts *o, int need_kie, int need_prompts);
void cli_ctx_close(struct cli_ctx *c);
/* How the worker would parse a descriptor, with this environment's settings. */
struct job_parse_opts cli_ctx_parse_opts(const struct cli_ctx *c);
/* Connects for one command: gives up after 5 s rather than retrying for ever. */
int cli_queue(const struct config *cfg, struct rconn *rc, struct queue *q);

int cli_exit_for(const struct kie_error *e);
void cli_print_kie_error(const struct kie_error *e);
/* o as compact JSON on one line of stdout. */
void cli_print_json(const cJSON *o);
int cli_report_result(struct cli_ctx *c, const struct kie_result *r, int save);

/* Writes s with control bytes as '?' (producer data must not drive the terminal), cut
 * after max_bytes (0: whole) with "...". */
void cli_put(FILE *f, const char *s, size_t max_bytes);
/* A member of o as a string (NULL when absent or not one) or a number (0). */
const char *cli_jstr(const cJSON *o, const char *name);
double cli_jnum(const cJSON *o, const char *name);
/* "500ms", "45s", "12m", "3.5h", "2.0d". */
void cli_age(double ms, char *out, size_t outlen);
/* cli_ctx_open (no KIE, no prompts) and cli_queue: -1 (message printed) on a bad setting;
 * the caller closes rc and c either way. */
int cli_admin_open(struct cli_ctx *c, const struct opts *o, struct rconn *rc, struct queue *q);
/* Records an action that changed the pool in its audit list (ops/audit.h): who is
 * "cli:<user>", from "<host> (cli)"; detail as audit_add takes it (not taken). A failed
 * write is said on stderr and does not change the exit code: the action is done. */
void cli_audit(struct queue *q, const char *action, const cJSON *detail);

/* ---- commands: argc/argv after the command's name; each returns an exit code ---- */
int cli_cmd_create(int argc, char **argv);
int cli_cmd_status_wait(int argc, char **argv, int wait);
int cli_cmd_credits(int argc, char **argv);
int cli_cmd_callback(int argc, char **argv);
int cli_cmd_prompt(int argc, char **argv);
int cli_cmd_metadata(int argc, char **argv);
int cli_cmd_config(int argc, char **argv);
int cli_cmd_pause(int argc, char **argv, int resume);
int cli_cmd_stats(int argc, char **argv);
int cli_cmd_job(int argc, char **argv);
int cli_cmd_dead(int argc, char **argv);
int cli_cmd_spend(int argc, char **argv);
int cli_cmd_budget(int argc, char **argv);
/* sched.c: kie group weight|limit, kie job cancel, and the scheduling parts of kie stats
 * ("schedule": sched_view_stats) and kie job show ("schedule": kie_position) */
int cli_cmd_group(int argc, char **argv);
int cli_cmd_job_cancel(int argc, char **argv);
void cli_sched_add_stats(struct queue *q, cJSON *s);
void cli_sched_print_stats(const cJSON *s);
/* kie stats' spend lines (cli/credits.c): today's spend against the pool's budget, each
 * account's spend and balance, the top groups against their budgets, the jobs waiting
 * over_budget — into s as "spend", and printed from it. */
void cli_credits_add_stats(struct queue *q, const struct config *cfg, cJSON *s);
void cli_credits_print_stats(const cJSON *s);
void cli_sched_add_position(struct queue *q, const char *job_id, cJSON *s);
void cli_sched_print_position(const cJSON *s);

#endif
