/* prompts.h — the seed's prompt templates and the four operations' prompt builders.
 * Templates are compiled in; a directory of <name>.txt files (KIE_PROMPTS_DIR)
 * overrides any of them without recompiling. Placeholders look like {{name}}.
 *
 * Must not: do I/O after prompts_load(). */
#ifndef KIE_PROMPTS_H
#define KIE_PROMPTS_H

#include <stddef.h>

/* Template names (also the override file names, plus ".txt"). */
#define PROMPT_GENERATE_IMAGE "generate_image"
#define PROMPT_TOP_ONLY_HINT "top_only_hint"
#define PROMPT_WHITE_MASK_HINT "white_mask_hint"
#define PROMPT_MODEL_POSE "model_pose"
#define PROMPT_EXTRACT_CLOTHING "extract_clothing"
#define PROMPT_EXTRACT_MATCH_HINT "extract_match_hint"
#define PROMPT_EXTRACT_TOP_ONLY_HINT "extract_top_only_hint"
#define PROMPT_OUTFIT_CHANGE_V2 "outfit_change_v2"
#define PROMPT_POSE_TWEAKS "pose_tweaks" /* one tweak per line */

#define PROMPT_FILE_MAX_BYTES (64 * 1024)

struct prompts;

/* Loads the compiled-in templates, then overrides from dir (NULL or "" for none).
 * Returns a new set (caller frees with prompts_free, NULL-safe) or NULL with err filled
 * (unreadable file, not UTF-8, too large). Files with unknown names are ignored. */
struct prompts *prompts_load(const char *dir, char *err, size_t errlen);
void prompts_free(struct prompts *p);

/* The active text of a template, or NULL for an unknown name. */
const char *prompts_get(const struct prompts *p, const char *name);
/* 1 when the template came from the override directory. */
int prompts_overridden(const struct prompts *p, const char *name);

/* Builders. Each returns a new UTF-8 string (caller frees) or NULL with err filled
 * when an input is missing or the result exceeds KIE's 5000-character limit. */
char *prompts_generate_image(const struct prompts *p, const char *clothing_description,
			     int extract_top_only, int white_mask, char *err, size_t errlen);
char *prompts_model_pose(const struct prompts *p, const char *pose, char *err, size_t errlen);
char *prompts_extract_clothing(const struct prompts *p, int recommend_matches, int top_only,
			       char *err, size_t errlen);
/* pose_tweak: append one pose tweak, picked deterministically by seed (same seed, same
 * tweak). */
char *prompts_outfit_change_v2(const struct prompts *p, int pose_tweak, unsigned long seed,
			       char *err, size_t errlen);

/* Renders template text, replacing {{key}} with the matching value (vars is a
 * NULL-terminated list of key, value pairs); unknown placeholders stay as written. */
char *prompts_render(const char *tmpl, const char *const *vars);

#endif
