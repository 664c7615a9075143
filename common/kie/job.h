/* job.h — the job descriptor (wire format v1, docs/protocol.md): parsing, validation,
 * and turning a job into a KIE createTask request through the prompt builders.
 *
 * Must not: touch Redis, KIE or the store: it parses and builds a request. */
#ifndef KIE_JOB_H
#define KIE_JOB_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "kie/kie_client.h"
#include "kie/prompts.h"

#define JOB_VERSION 1
#define JOB_ID_MAX 128
#define JOB_REPLY_TO_MAX 256
#define JOB_CHARACTER_MAX 256
#define JOB_PRIORITY_DEFAULT 5
#define JOB_PRIORITY_MAX 9
#define JOB_GROUP_MAX 128
#define JOB_CALLBACK_URL_MAX 2048 /* KIE's limit, with jobId added */
/* A descriptor without an id gets '"id":"job_<24 hex>",' (36 bytes) written in after its
 * '{'; the size limit allows that much more for a descriptor that starts so. */
#define JOB_ID_SPLICE_BYTES 36

enum job_type {
	JOB_GENERATE_IMAGE = 0, /* clothing description + reference image */
	JOB_MODEL_POSE,         /* change only the pose */
	JOB_EXTRACT_CLOTHING,   /* garments alone, always 1:1 */
	JOB_OUTFIT_CHANGE_V2,   /* clothing image onto a model photo */
	JOB_RAW,                /* prompt + images as given */
};
const char *job_type_str(enum job_type t);
/* Every type's name, in enum order (*n of them): the metrics' label values. */
const char *const *job_type_names(int *n);
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
	char *callback_url;      /* as given */
	char *callback_final;    /* what KIE gets: callbackUrl or KIE_CALLBACK_URL with jobId=<id>
				  * added before any #fragment; NULL when neither is set */
	char *reply_to;
	long max_attempts;       /* 0: the worker's default */
	char *meta_raw;          /* the "meta" object's bytes, minified but otherwise untouched
				  * (64-bit integers, 1e999 and key order survive); NULL if none */
	char *model_used;        /* the model createTask will name: input.model or KIE_MODEL */
	/* scheduling (docs/protocol.md, "Who goes first") */
	long priority;           /* 0..9, larger first; JOB_PRIORITY_DEFAULT when absent */
	char *group;             /* the app's user or tenant; NULL: the shared default group */
	long long not_before_ms; /* epoch ms before which no task is created; 0: none */
	char *account;           /* the KIE account's alias (accounts.h); NULL: the default */
};

struct job_parse_opts {
	size_t max_bytes;             /* KIE_JOB_MAX_BYTES */
	const char *default_model;    /* KIE_MODEL; NULL: google/nano-banana-edit */
	const char *prefix;           /* KIE_REDIS_PREFIX: replyTo may not name "<prefix>:..."
				       * keys other than "<prefix>:replies:..."; NULL: no check */
	size_t meta_max_bytes;        /* KIE_JOB_META_MAX_BYTES; 0: no meta accepted */
	const char *default_callback_url; /* KIE_CALLBACK_URL; NULL or "": none */
};

/* Parses and validates a descriptor of len bytes: strict JSON first (json_strict.h: one
 * value, no duplicate keys, no NUL or raw control bytes, ...), then the wire format.
 * Returns a new job (caller frees with job_free; job_free(NULL) is a no-op) or NULL with
 * err holding the reason, which names the field. A descriptor without "id" gets a
 * generated one (id_generated = 1; see job_splice_id()). */
struct job *job_parse(const char *bytes, size_t len, const struct job_parse_opts *o,
		      char *err, size_t errlen);

/* The descriptor with '"id":"<id>",' written in after its opening '{' — every other byte
 * untouched. Returns a new buffer (caller frees) of *new_len bytes, or NULL when bytes do
 * not start with an object. */
char *job_splice_id(const char *bytes, size_t len, const char *id, size_t *new_len);
void job_free(struct job *j);

/* Builds the prompt for the job's type. Returns a new string or NULL with err filled. */
char *job_build_prompt(const struct job *j, const struct prompts *p, char *err, size_t errlen);

/* Fills req from the job and a built prompt (pointers into j and prompt: keep both alive).
 * extract_clothing always asks for 1:1. callback_url is left to the caller. */
void job_to_request(const struct job *j, const char *prompt, struct kie_task_request *req);

/* The descriptor as JSON (canonical field order, v1). Returns a new string. */
char *job_to_json(const struct job *j);

/* 1 when s is a valid job id ([A-Za-z0-9._:-], 1..128 bytes), else 0. */
int job_id_valid(const char *s);
/* 1 when s is a valid group name ([A-Za-z0-9._:@-], 1..128 bytes), else 0. */
int job_group_valid(const char *s);

#endif
