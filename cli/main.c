/* main.c — `kie`, the one-shot command-line tool: dispatches to its commands (task.c:
 * KIE tasks; pause.c, stats.c, dead.c: the pool; credits.c: spend and budgets). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config/config.h"
#include "net/http.h"
#include "cli.h"

static const char main_help[] =
	"usage: kie COMMAND [options]   (kie COMMAND --help for each)\n"
	"Commands:\n"
	"  create OPERATION   create a KIE task (raw, generate-image, model-pose,\n"
	"                     extract-clothing, outfit-change-v2); --wait for the result\n"
	"  status TASK_ID     read a task's state once (recordInfo)\n"
	"  wait TASK_ID       wait until a task succeeds or fails\n"
	"  credits            the account's remaining credits\n"
	"  callback [FILE]    normalize a callback body (processCallback)\n"
	"  prompt OPERATION   print the prompt an operation would send\n"
	"  metadata get|update TASK_ID   read or merge a task's metadata record\n"
	"  config             print the active settings (secrets masked); --help lists all\n"
	"  pause [--reason R] [--for DURATION]   pause the pool (Redis): no new jobs are taken\n"
	"  resume             lift the pool's pause\n"
	"  stats              the pool: depths, workers and their jobs, rates, pause, limiter\n"
	"  job show JOB_ID    one job: queued, in flight, uncertain, dead or finished; its\n"
	"                     task, attempts, owner, events, dead letters\n"
	"  job cancel JOB_ID  cancel a job still queued or delayed (it never reaches KIE)\n"
	"  group weight|limit GROUP N   a group's share of the slots, or its cap in flight\n"
	"  dead list|show|retry|purge   the dead letters: read them, replay them (atomically,\n"
	"                     one job, all, or --type/--reason/--older-than), delete them\n"
	"  spend [--by type|group|account] [--days N]   credits spent per UTC day\n"
	"  budget set GROUP CREDITS | budget list   daily credit budgets per group\n"
	"Configuration comes from the environment (KIE_API_TOKEN, KIE_BASE_URL, R2_*, ...)\n"
	"and, on every command but callback, from --SETTING VALUE over it (--redis-url URL,\n"
	"or by its name: --REDIS_URL URL); secrets only from the environment or their _FILE.\n"
	"The operator commands (pause, resume, stats, job, dead) print text, or with --json\n"
	"compact JSON (a list: one object a line); the task commands print JSON. Durations:\n"
	"500ms, 90s, 15m, 2h, 1d; a plain number is seconds. Times printed as text are\n"
	"ISO-8601 UTC.\n";

int main(int argc, char **argv)
{
	int rc;
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(main_help, argc < 2 ? stderr : stdout);
		fputs(cli_exit_codes_help, argc < 2 ? stderr : stdout);
		if (argc >= 2)
			config_print_help(stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	if (http_global_init() != 0) {
		fprintf(stderr, "kie: libcurl initialisation failed\n");
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	int sub_argc = argc - 2;
	char **sub_argv = argv + 2;
	if (strcmp(cmd, "create") == 0) rc = cli_cmd_create(sub_argc, sub_argv);
	else if (strcmp(cmd, "status") == 0) rc = cli_cmd_status_wait(sub_argc, sub_argv, 0);
	else if (strcmp(cmd, "wait") == 0) rc = cli_cmd_status_wait(sub_argc, sub_argv, 1);
	else if (strcmp(cmd, "credits") == 0) rc = cli_cmd_credits(sub_argc, sub_argv);
	else if (strcmp(cmd, "callback") == 0) rc = cli_cmd_callback(sub_argc, sub_argv);
	else if (strcmp(cmd, "prompt") == 0) rc = cli_cmd_prompt(sub_argc, sub_argv);
	else if (strcmp(cmd, "metadata") == 0) rc = cli_cmd_metadata(sub_argc, sub_argv);
	else if (strcmp(cmd, "config") == 0) rc = cli_cmd_config(sub_argc, sub_argv);
	else if (strcmp(cmd, "pause") == 0) rc = cli_cmd_pause(sub_argc, sub_argv, 0);
	else if (strcmp(cmd, "resume") == 0) rc = cli_cmd_pause(sub_argc, sub_argv, 1);
	else if (strcmp(cmd, "stats") == 0) rc = cli_cmd_stats(sub_argc, sub_argv);
	else if (strcmp(cmd, "job") == 0 && sub_argc > 0 && strcmp(sub_argv[0], "cancel") == 0)
		rc = cli_cmd_job_cancel(sub_argc, sub_argv);
	else if (strcmp(cmd, "job") == 0) rc = cli_cmd_job(sub_argc, sub_argv);
	else if (strcmp(cmd, "group") == 0) rc = cli_cmd_group(sub_argc, sub_argv);
	else if (strcmp(cmd, "dead") == 0) rc = cli_cmd_dead(sub_argc, sub_argv);
	else if (strcmp(cmd, "spend") == 0) rc = cli_cmd_spend(sub_argc, sub_argv);
	else if (strcmp(cmd, "budget") == 0) rc = cli_cmd_budget(sub_argc, sub_argv);
	else {
		fprintf(stderr, "kie: unknown command \"%s\" (see kie --help)\n", cmd);
		rc = EXIT_USAGE;
	}
	http_global_cleanup();
	return rc;
}

