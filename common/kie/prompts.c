/* prompts.c — compiled-in templates, directory overrides, rendering and length checks. */
#include "kie/prompts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "kie/kie_client.h"

struct tmpl_def {
	const char *name;
	const char *text;
};

/* The templates. Keep tone and constraints here, in one place (the seed's lib/prompts.ts). */
static const struct tmpl_def defaults[] = {
	{PROMPT_GENERATE_IMAGE,
	 "Dress the person in the reference image in the following clothing: {{description}}. "
	 "Keep the person's face, hair, skin tone, body shape, proportions, pose and the "
	 "background exactly as they are; change only the clothing. The garments must fit "
	 "naturally, with realistic fabric, folds, seams and lighting that match the scene. "
	 "Photorealistic fashion photograph, high detail, no text, no watermark."
	 "{{top_only_hint}}{{mask_hint}}"},
	{PROMPT_TOP_ONLY_HINT,
	 " Replace only the upper-body garment (top); leave trousers, skirt, shoes and "
	 "accessories unchanged."},
	{PROMPT_WHITE_MASK_HINT,
	 " The white masked area of the reference image marks where the new clothing goes; "
	 "fill it completely and blend its edges invisibly."},
	{PROMPT_MODEL_POSE,
	 "Change only the pose of the person in the reference image to: {{pose}}. "
	 "Strict constraints: keep the exact same body shape, height, weight, proportions, "
	 "limb lengths, face, hair, skin tone, clothing (every garment, colour, pattern and "
	 "fit) and background. Do not slim, enlarge or reshape any part of the body. The "
	 "anatomy must be correct: two arms, two legs, five fingers per hand, natural joints. "
	 "Photorealistic, consistent lighting, no text, no watermark."},
	{PROMPT_EXTRACT_CLOTHING,
	 "Extract the clothing worn by the person in the reference image and show it alone as "
	 "a clean product photo: remove the person entirely, lay the garments flat or on an "
	 "invisible mannequin, centred on a pure white background, with their exact colours, "
	 "patterns, textures, logos and proportions. Square composition, even studio "
	 "lighting, no text, no watermark.{{top_only_hint}}{{match_hint}}"},
	{PROMPT_EXTRACT_MATCH_HINT,
	 " Beside the extracted garments, add one or two items that match them well (for "
	 "example trousers, a skirt, shoes or a bag) in a coherent style."},
	{PROMPT_EXTRACT_TOP_ONLY_HINT,
	 " Extract only the upper-body garment (top); leave out everything else."},
	{PROMPT_OUTFIT_CHANGE_V2,
	 "The first reference image shows clothing; the second shows a model. Dress the model "
	 "in exactly that clothing: same garments, colours, patterns, textures, logos and fit. "
	 "Keep the model's face, hair, skin tone, body shape and proportions and the "
	 "background unchanged. Realistic fabric drape, folds and lighting that match the "
	 "model photo. Photorealistic fashion photograph, no text, no watermark.{{pose_tweak}}"},
	{PROMPT_POSE_TWEAKS,
	 "Slightly turn the shoulders towards the camera.\n"
	 "Shift the weight onto one leg for a relaxed stance.\n"
	 "Rest one hand lightly on the hip.\n"
	 "Let the arms hang naturally with a small bend at the elbows.\n"
	 "Take a small step forward as if walking.\n"
	 "Turn the head slightly to one side with a soft expression.\n"},
};

#define NTEMPLATES (sizeof(defaults) / sizeof(defaults[0]))

struct prompts {
	char *text[NTEMPLATES];
	int overridden[NTEMPLATES];
};

static int find(const char *name)
{
	for (size_t i = 0; i < NTEMPLATES; i++)
		if (strcmp(defaults[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* Reads a whole override file; returns a new string or NULL with err filled. */
static char *read_template(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	struct dbuf b;
	char chunk[4096];
	size_t n;

	if (!f) {
		snprintf(err, errlen, "KIE_PROMPTS_DIR: cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	dbuf_init(&b, PROMPT_FILE_MAX_BYTES);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (dbuf_add(&b, chunk, n) != 0) {
			snprintf(err, errlen, "KIE_PROMPTS_DIR: %s is larger than %d bytes", path,
				 PROMPT_FILE_MAX_BYTES);
			fclose(f);
			dbuf_free(&b);
			return NULL;
		}
	}
	fclose(f);
	if (!b.data)
		dbuf_add(&b, "", 0);
	/* a trailing newline is an editor's habit, not part of the prompt */
	while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
		b.data[--b.len] = '\0';
	if (util_utf8_len(b.data, b.len) < 0) {
		snprintf(err, errlen, "KIE_PROMPTS_DIR: %s is not valid UTF-8", path);
		dbuf_free(&b);
		return NULL;
	}
	return b.data;
}

struct prompts *prompts_load(const char *dir, char *err, size_t errlen)
{
	struct prompts *p = util_xcalloc(1, sizeof(*p));

	for (size_t i = 0; i < NTEMPLATES; i++) {
		char path[4096];
		p->text[i] = NULL;
		if (dir && *dir) {
			snprintf(path, sizeof(path), "%s/%s.txt", dir, defaults[i].name);
			FILE *probe = fopen(path, "rb");
			if (probe) {
				fclose(probe);
				p->text[i] = read_template(path, err, errlen);
				if (!p->text[i]) {
					prompts_free(p);
					return NULL;
				}
				p->overridden[i] = 1;
			} else if (errno != ENOENT) {
				snprintf(err, errlen, "KIE_PROMPTS_DIR: cannot read %s: %s", path,
					 strerror(errno));
				prompts_free(p);
				return NULL;
			}
		}
		if (!p->text[i])
			p->text[i] = util_strdup(defaults[i].text);
	}
	return p;
}

void prompts_free(struct prompts *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < NTEMPLATES; i++)
		free(p->text[i]);
	free(p);
}

const char *prompts_get(const struct prompts *p, const char *name)
{
	int i = find(name);
	return i < 0 ? NULL : p->text[i];
}

int prompts_overridden(const struct prompts *p, const char *name)
{
	int i = find(name);
	return i < 0 ? 0 : p->overridden[i];
}

char *prompts_render(const char *tmpl, const char *const *vars)
{
	struct dbuf b;
	const char *s = tmpl;

	dbuf_init(&b, (size_t)1 << 30);
	while (*s) {
		const char *open = strstr(s, "{{");
		const char *close = open ? strstr(open + 2, "}}") : NULL;
		if (!open || !close) {
			dbuf_addstr(&b, s);
			break;
		}
		dbuf_add(&b, s, (size_t)(open - s));
		size_t klen = (size_t)(close - open - 2);
		const char *val = NULL;
		for (const char *const *v = vars; v && v[0]; v += 2) {
			if (strlen(v[0]) == klen && strncmp(v[0], open + 2, klen) == 0) {
				val = v[1] ? v[1] : "";
				break;
			}
		}
		if (val)
			dbuf_addstr(&b, val);
		else
			dbuf_add(&b, open, (size_t)(close + 2 - open));
		s = close + 2;
	}
	if (!b.data)
		return util_strdup("");
	return b.data;
}

/* Checks KIE's character limit; frees and returns NULL when over. */
static char *checked(char *prompt, const char *op, char *err, size_t errlen)
{
	long chars = util_utf8_len(prompt, strlen(prompt));
	if (chars < 0) {
		snprintf(err, errlen, "%s: the prompt is not valid UTF-8", op);
		free(prompt);
		return NULL;
	}
	if (chars > KIE_PROMPT_MAX_CHARS) {
		snprintf(err, errlen, "%s: the prompt is %ld characters; KIE accepts at most %d",
			 op, chars, KIE_PROMPT_MAX_CHARS);
		free(prompt);
		return NULL;
	}
	return prompt;
}

char *prompts_generate_image(const struct prompts *p, const char *description,
			     int extract_top_only, int white_mask, char *err, size_t errlen)
{
	if (!description || !*description) {
		snprintf(err, errlen, "generate_image: the clothing description is empty");
		return NULL;
	}
	const char *vars[] = {
		"description", description,
		"top_only_hint", extract_top_only ? prompts_get(p, PROMPT_TOP_ONLY_HINT) : "",
		"mask_hint", white_mask ? prompts_get(p, PROMPT_WHITE_MASK_HINT) : "",
		NULL};
	return checked(prompts_render(prompts_get(p, PROMPT_GENERATE_IMAGE), vars),
		       "generate_image", err, errlen);
}

char *prompts_model_pose(const struct prompts *p, const char *pose, char *err, size_t errlen)
{
	const char *vars[] = {"pose", pose && *pose ? pose : "a natural, relaxed fashion pose",
			      NULL};
	return checked(prompts_render(prompts_get(p, PROMPT_MODEL_POSE), vars), "model_pose",
		       err, errlen);
}

char *prompts_extract_clothing(const struct prompts *p, int recommend_matches, int top_only,
			       char *err, size_t errlen)
{
	const char *vars[] = {
		"top_only_hint", top_only ? prompts_get(p, PROMPT_EXTRACT_TOP_ONLY_HINT) : "",
		"match_hint", recommend_matches ? prompts_get(p, PROMPT_EXTRACT_MATCH_HINT) : "",
		NULL};
	return checked(prompts_render(prompts_get(p, PROMPT_EXTRACT_CLOTHING), vars),
		       "extract_clothing", err, errlen);
}

/* Line (seed mod count) of the tweak list, whole, after a space: " <line>" (a new string),
 * or "" when the list has no line. */
static char *pick_tweak(const char *list, unsigned long seed)
{
	size_t count = 0, want, line = 0;
	const char *s, *start = list;

	for (s = list; *s; s++)
		if (*s == '\n' || s[1] == '\0')
			count++;
	if (!count)
		return util_strdup("");
	want = (size_t)(seed % count);
	for (s = list;; s++) {
		if (*s == '\n' || *s == '\0') {
			if (line == want) {
				/* the whole line, however long (the file is capped at
				 * PROMPT_FILE_MAX_BYTES, the prompt at KIE's limit): a fixed buffer
				 * cut a long one inside a character */
				size_t len = (size_t)(s - start);
				char *out = util_xmalloc(len + 2);
				out[0] = ' ';
				memcpy(out + 1, start, len);
				out[len + 1] = '\0';
				return out;
			}
			line++;
			start = s + 1;
			if (*s == '\0')
				return util_strdup("");
		}
	}
}

char *prompts_outfit_change_v2(const struct prompts *p, int pose_tweak, unsigned long seed,
			       char *err, size_t errlen)
{
	char *tweak = pose_tweak ? pick_tweak(prompts_get(p, PROMPT_POSE_TWEAKS), seed)
				 : util_strdup("");
	const char *vars[] = {"pose_tweak", tweak, NULL};
	char *out = checked(prompts_render(prompts_get(p, PROMPT_OUTFIT_CHANGE_V2), vars),
			    "outfit_change_v2", err, errlen);
	free(tweak);
	return out;
}
