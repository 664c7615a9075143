/* pending.c — the pending metadata record of a job's task (docs/protocol.md section 7),
 * built from the job: by the runner that creates the task, and by an adoption, which
 * rebuilds it from the descriptor the job hash keeps (raw) — the same request, since a
 * pose tweak's seed comes from the job id. */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "worker.h"

void worker_task_metadata(const struct worker *w, const struct job *j, const char *prompt,
			  const struct kie_task_request *req, const char *task_id,
			  struct task_metadata *m)
{
	memset(m, 0, sizeof(*m));
	m->task_id = task_id;
	m->job_id = j->id;
	m->type = job_type_str(j->type);
	m->model = req->model ? req->model : w->cfg->kie_model;
	m->prompt = prompt;
	m->image_urls = req->image_urls;
	m->n_images = req->n_images;
	m->character = j->character;
	m->ratio = req->ratio ? req->ratio : KIE_DEFAULT_RATIO;
	m->output_format = req->output_format ? req->output_format : "png";
}

char *worker_pending_from_raw(const struct worker *w, const char *raw, size_t len,
			      const char *task_id, char *err, size_t errlen)
{
	struct job *j = job_parse(raw, len, &w->parse_opts, err, errlen);
	struct kie_task_request req;
	struct task_metadata m;
	char *prompt, *s = NULL;
	cJSON *rec;

	if (!j)
		return NULL;
	prompt = job_build_prompt(j, w->prompts, err, errlen);
	if (prompt) {
		job_to_request(j, prompt, &req);
		worker_task_metadata(w, j, prompt, &req, task_id, &m);
		rec = metadata_pending(&m, util_now_ms());
		s = cJSON_PrintUnformatted(rec);
		cJSON_Delete(rec);
	}
	free(prompt);
	job_free(j);
	return s;
}
