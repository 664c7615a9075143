/* test_script.c — the scripts embedded by scripts/embed-lua.sh: each one's bytes hash to
 * the SHA1 it is called by (EVALSHA), its length is its bytes', names are unique. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/crypto.h"
#include "lua_scripts.h"

static void every_sha1_is_its_source(void **state)
{
	(void)state;
	assert_true(LUA_SCRIPTS_COUNT >= 20);
	for (int i = 0; i < LUA_SCRIPTS_COUNT; i++) {
		const struct script *s = lua_scripts[i];
		char hex[41];
		crypto_sha1_hex(s->src, s->len, hex);
		assert_string_equal(hex, s->sha1);
		assert_int_equal(strlen(s->src), s->len); /* text: no NUL inside, one after */
		assert_true(s->name[0] != '\0');
		/* every script says what it is in its first comment line */
		assert_non_null(strstr(s->src, s->name));
	}
}

static void names_are_unique_and_known_steps_exist(void **state)
{
	(void)state;
	for (int i = 0; i < LUA_SCRIPTS_COUNT; i++)
		for (int j = i + 1; j < LUA_SCRIPTS_COUNT; j++)
			assert_string_not_equal(lua_scripts[i]->name, lua_scripts[j]->name);
	assert_string_equal(lua_pick.name, "pick");
	assert_string_equal(lua_finalize.name, "finalize");
	assert_non_null(strstr(lua_limiter_acquire.src, "KEYS[1]"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_sha1_is_its_source),
		cmocka_unit_test(names_are_unique_and_known_steps_exist),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
