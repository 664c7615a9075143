/* test_rconn.c — which error replies mean "this node was demoted" (rconn_error_kind). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rconn.h"

static void error_kinds(void **state)
{
	static const struct {
		const char *msg;
		enum rconn_err_kind want;
	} cases[] = {
		{"READONLY You can't write against a read only replica.", RCONN_ERR_DEMOTED},
		{"READONLY You can't write against a read only replica. script: 67ed14c1, on "
		 "@user_script:1.", RCONN_ERR_DEMOTED},
		{"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
		 RCONN_ERR_DEMOTED},
		{"NOREPLICAS Not enough good replicas to write.", RCONN_ERR_DEMOTED},
		{"READONLY", RCONN_ERR_DEMOTED},
		{"ERR Error running script (call to f_1234): @user_script:1: @user_script: 1: "
		 "-READONLY You can't write against a read only replica.", RCONN_ERR_DEMOTED},
		{"UNBLOCKED force unblock from blocking operation, instance state changed "
		 "(master -> replica?)", RCONN_ERR_DEMOTED},
		{"LOADING Redis is loading the dataset in memory", RCONN_ERR_LOADING},
		{"UNBLOCKED client unblocked via CLIENT UNBLOCK", RCONN_ERR_OTHER},
		{"READONLYX", RCONN_ERR_OTHER},
		{"ERR READONLY", RCONN_ERR_OTHER},
		{"ERR wrong number of arguments", RCONN_ERR_OTHER},
		{"OOM command not allowed when used memory > 'maxmemory'.", RCONN_ERR_OTHER},
		{"EXECABORT Transaction discarded because of previous errors.", RCONN_ERR_OTHER},
		{"readonly lower case is not Redis's", RCONN_ERR_OTHER},
		{"", RCONN_ERR_OTHER},
		{NULL, RCONN_ERR_OTHER},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum rconn_err_kind got = rconn_error_kind(cases[i].msg);
		if (got != cases[i].want)
			print_error("\"%s\": kind %d, wanted %d\n", cases[i].msg ? cases[i].msg : "(null)",
				    (int)got, (int)cases[i].want);
		assert_int_equal(got, cases[i].want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(error_kinds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
