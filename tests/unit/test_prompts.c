/* test_prompts.c — the four builders, their options, UTF-8, the 5000-character limit,
 * the deterministic pose tweak and directory overrides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/util.h"
#include "kie/prompts.h"

static struct prompts *P;
static char err[512];

static int setup(void **state)
{
	P = prompts_load(NULL, err, sizeof(err));
	return P ? 0 : -1;
}

static int teardown(void **state)
{
	prompts_free(P);
	return 0;
}

static void generate_image_options(void **state)
{
	const char *desc = "淡紫色丝绒短外套 + 高腰直筒牛仔裤";
	char *plain = prompts_generate_image(P, desc, 0, 0, err, sizeof(err));
	char *both = prompts_generate_image(P, desc, 1, 1, err, sizeof(err));
	assert_non_null(strstr(plain, desc)); /* UTF-8 kept verbatim */
	assert_null(strstr(plain, prompts_get(P, PROMPT_TOP_ONLY_HINT)));
	assert_null(strstr(plain, prompts_get(P, PROMPT_WHITE_MASK_HINT)));
	assert_non_null(strstr(both, prompts_get(P, PROMPT_TOP_ONLY_HINT)));
	assert_non_null(strstr(both, prompts_get(P, PROMPT_WHITE_MASK_HINT)));
	assert_null(strstr(both, "{{"));
	free(plain);
	free(both);
	assert_null(prompts_generate_image(P, "", 0, 0, err, sizeof(err)));
	assert_non_null(strstr(err, "empty"));
}

static void model_pose_and_extract(void **state)
{
	char *p = prompts_model_pose(P, "sitting on a stool", err, sizeof(err));
	char *d = prompts_model_pose(P, NULL, err, sizeof(err));
	assert_non_null(strstr(p, "sitting on a stool"));
	assert_non_null(strstr(p, "body shape"));
	assert_non_null(strstr(d, "natural, relaxed"));
	free(p);
	free(d);
	char *e0 = prompts_extract_clothing(P, 0, 0, err, sizeof(err));
	char *e1 = prompts_extract_clothing(P, 1, 1, err, sizeof(err));
	assert_null(strstr(e0, prompts_get(P, PROMPT_EXTRACT_MATCH_HINT)));
	assert_non_null(strstr(e1, prompts_get(P, PROMPT_EXTRACT_MATCH_HINT)));
	assert_non_null(strstr(e1, prompts_get(P, PROMPT_EXTRACT_TOP_ONLY_HINT)));
	free(e0);
	free(e1);
}

static void outfit_tweak_is_deterministic_and_cycles(void **state)
{
	const char *tweaks = prompts_get(P, PROMPT_POSE_TWEAKS);
	size_t lines = 0;
	for (const char *s = tweaks; *s; s++)
		lines += *s == '\n' || s[1] == '\0';
	assert_true(lines >= 2);
	char *none = prompts_outfit_change_v2(P, 0, 5, err, sizeof(err));
	for (unsigned long seed = 0; seed < 2 * lines; seed++) {
		char *a = prompts_outfit_change_v2(P, 1, seed, err, sizeof(err));
		char *b = prompts_outfit_change_v2(P, 1, seed, err, sizeof(err));
		char *c = prompts_outfit_change_v2(P, 1, seed + lines, err, sizeof(err));
		assert_string_equal(a, b);           /* same seed, same prompt */
		assert_string_equal(a, c);           /* seed mod count picks the line */
		assert_true(strlen(a) > strlen(none)); /* a tweak was appended */
		/* the appended tweak is one of the template's lines */
		const char *tweak = a + strlen(none) + 1;
		assert_non_null(strstr(tweaks, tweak));
		free(a);
		free(b);
		free(c);
	}
	char *s0 = prompts_outfit_change_v2(P, 1, 0, err, sizeof(err));
	char *s1 = prompts_outfit_change_v2(P, 1, 1, err, sizeof(err));
	assert_string_not_equal(s0, s1);
	free(s0);
	free(s1);
	free(none);
}

static void limit_5000_characters(void **state)
{
	size_t n = 5000;
	char *desc = malloc(3 * n + 1);
	for (size_t i = 0; i < n; i++)
		memcpy(desc + 3 * i, "\xe8\xa1\xa3", 3);
	desc[3 * n] = '\0';
	assert_null(prompts_generate_image(P, desc, 0, 0, err, sizeof(err)));
	assert_non_null(strstr(err, "5000"));
	free(desc);
}

static void render_placeholders(void **state)
{
	const char *vars[] = {"a", "1", "b", "2", NULL};
	char *s = prompts_render("{{a}}-{{b}}-{{a}}-{{c}}-{{", vars);
	assert_string_equal(s, "1-2-1-{{c}}-{{");
	free(s);
}

static void overrides_from_a_directory(void **state)
{
	char dir[] = "/tmp/kie-prompts-XXXXXX", path[256];
	FILE *f;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/generate_image.txt", dir);
	f = fopen(path, "w");
	fputs("OVERRIDE {{description}}\n", f);
	fclose(f);
	struct prompts *o = prompts_load(dir, err, sizeof(err));
	assert_non_null(o);
	assert_true(prompts_overridden(o, PROMPT_GENERATE_IMAGE));
	assert_false(prompts_overridden(o, PROMPT_MODEL_POSE));
	char *s = prompts_generate_image(o, "jacket", 0, 0, err, sizeof(err));
	assert_string_equal(s, "OVERRIDE jacket");
	free(s);
	prompts_free(o);
	char bad[256];
	snprintf(bad, sizeof(bad), "%s/model_pose.txt", dir);
	f = fopen(bad, "wb");
	fputs("\xff\xfe", f);
	fclose(f);
	assert_null(prompts_load(dir, err, sizeof(err)));
	assert_non_null(strstr(err, "model_pose.txt is not valid UTF-8"));
	unlink(path);
	unlink(bad);
	rmdir(dir);
}

/* Issue 16: a pose-tweak line over 1022 bytes was cut into a 1024-byte buffer, inside a
 * character: "the prompt is not valid UTF-8" (exit 3 from `kie prompt`). Lines are read
 * whole. */
static void long_pose_tweak_lines_are_whole(void **state)
{
	char dir[] = "/tmp/kie-prompts-XXXXXX", path[256], line[2100];
	FILE *f;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/pose_tweaks.txt", dir);
	f = fopen(path, "w");
	/* 700 two-byte characters after one ASCII byte: byte 1023 is inside one */
	line[0] = 'x';
	for (int i = 0; i < 700; i++)
		memcpy(line + 1 + 2 * i, "\xc3\xa9", 2);
	line[1401] = '\0';
	fprintf(f, "short one\n%s\n", line);
	fclose(f);
	struct prompts *o = prompts_load(dir, err, sizeof(err));
	assert_non_null(o);
	char *s = prompts_outfit_change_v2(o, 1, 1, err, sizeof(err)); /* seed 1: line 2 */
	if (!s)
		fail_msg("refused: %s", err);
	assert_non_null(strstr(s, line));
	assert_true(util_utf8_len(s, strlen(s)) > 0);
	free(s);
	s = prompts_outfit_change_v2(o, 1, 0, err, sizeof(err));
	assert_non_null(strstr(s, " short one"));
	free(s);
	prompts_free(o);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(generate_image_options),
		cmocka_unit_test(model_pose_and_extract),
		cmocka_unit_test(outfit_tweak_is_deterministic_and_cycles),
		cmocka_unit_test(limit_5000_characters),
		cmocka_unit_test(render_placeholders),
		cmocka_unit_test(overrides_from_a_directory),
		cmocka_unit_test(long_pose_tweak_lines_are_whole),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
