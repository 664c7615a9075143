/* job.h — the job descriptor (wire format v1, docs/protocol.md): parsing, validation,
 * and turning a job into a KIE createTask request through the prompt builders. */
#ifndef KIE_JOB_H
#define KIE_JOB_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "kie_client.h"
#include "prompts.h"

#define JOB_VERSION 1
#define JOB_ID_MAX 128
#define JOB_REPLY_TO_MAX 256
#define JOB_CHARACTER_MAX 256

enum job_type {
	JOB_GENERATE_IMAGE = 0, /* clothing description + reference image */
	JOB_MODEL_POSE,         /* change only the pose */
	JOB_EXTRACT_CLOTHING,   /* garments alone, always 1:1 */
	JOB_OUTFIT_CHANGE_V2,   /* clothing image onto a model photo */
	JOB_RAW,                /* prompt + images as given */
};
const char *job_type_str(enum job_type t);
int job_type_parse(const char *s, enum job_type *out);

struct job {
	int version;
	char *id;
	int id_generated;        /* the id was made by the worker, not the producer */
	enum job_type type;
	/* inputs */
	char *description;       /* generate_image */
	char *pose;              /* model_pose (optional) */
	char *prompt;            /* raw */
	char *model;             /* raw (optional) */
	char **image_urls;
	size_t n_images;
	int extract_top_only, wear_mask;      /* generate_image */
	int recommend_matches, top_only;      /* extract_clothing */
	int pose_tweak;                       /* outfit_change_v2 */
	unsigned long seed;
	int has_seed;
	/* envelope */
	char *ratio;
	char *output_format;
	char *character;
	char *callback_url;
	char *reply_to;
	long max_attempts;       /* 0: the worker's default */
	cJSON *meta;             /* passed through to the completion event; may be NULL */
};

/* Parses and validates a descriptor of len bytes. Returns a new job (caller frees with
 * job_free; job_free(NULL) is a no-op) or NULL with err holding the reason, which names
 * the field. A descriptor without "id" gets a generated one (id_generated = 1). */
struct job *job_parse(const char *bytes, size_t len, size_t max_bytes, char *err,
		      size_t errlen);
void job_free(struct job *j);

/* Builds the prompt for the job's type. Returns a new string or NULL with err filled. */
char *job_build_prompt(const struct job *j, const struct prompts *p, char *err, size_t errlen);

/* Fills req from the job and a built prompt (pointers into j and prompt: keep both alive).
 * extract_clothing always asks for 1:1. callback_url is left to the caller. */
void job_to_request(const struct job *j, const char *prompt, struct kie_task_request *req);

/* The descriptor as JSON (canonical field order, v1). Returns a new string. */
char *job_to_json(const struct job *j);

/* 0 when s is a valid job id ([A-Za-z0-9._:-], 1..128 bytes). */
int job_id_valid(const char *s);

#endif
