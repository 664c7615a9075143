// worker.mjs — a BullMQ worker doing kie-worker's job, written the way BullMQ's own docs
// write step jobs ("Process Step Jobs": job.updateData + job.moveToDelayed + DelayedError),
// for bench/compare.py. Per job: createTask at KIE, the pending metadata record to S3/R2,
// recordInfo polled from delayed re-runs of the same job, the completed record, and a
// completion event LPUSHed onto a results list. Not a product: bench only.
//
// Environment: REDIS_URL, KIE_BASE_URL, KIE_API_TOKEN, KIE_MODEL (google/nano-banana-edit),
// R2_ENDPOINT, R2_ACCESS_KEY_ID, R2_SECRET_ACCESS_KEY, R2_BUCKET_NAME,
// BENCH_QUEUE (kie), BENCH_RESULTS_KEY (bench:results), BENCH_CONCURRENCY (20),
// BENCH_POLL_INITIAL_MS (2500), BENCH_POLL_MAX_MS (20000), BENCH_POLL_TIMEOUT_MS (900000).
// Prints "ready" on stdout once the worker runs; SIGTERM closes it and exits 0.
import { Worker, DelayedError, UnrecoverableError } from 'bullmq';
import IORedis from 'ioredis';
import { S3Client, PutObjectCommand } from '@aws-sdk/client-s3';

const env = (name, dflt) => {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (dflt === undefined) {
      console.error(`worker.mjs: ${name} is not set`);
      process.exit(2);
    }
    return dflt;
  }
  return v;
};

const REDIS_URL = env('REDIS_URL');
const KIE_BASE_URL = env('KIE_BASE_URL').replace(/\/+$/, '');
const KIE_API_TOKEN = env('KIE_API_TOKEN');
const MODEL = env('KIE_MODEL', 'google/nano-banana-edit');
const BUCKET = env('R2_BUCKET_NAME');
const QUEUE = env('BENCH_QUEUE', 'kie');
const RESULTS_KEY = env('BENCH_RESULTS_KEY', 'bench:results');
const CONCURRENCY = Number(env('BENCH_CONCURRENCY', '20'));
const POLL_INITIAL_MS = Number(env('BENCH_POLL_INITIAL_MS', '2500'));
const POLL_MAX_MS = Number(env('BENCH_POLL_MAX_MS', '20000'));
const POLL_TIMEOUT_MS = Number(env('BENCH_POLL_TIMEOUT_MS', '900000'));

const s3 = new S3Client({
  endpoint: env('R2_ENDPOINT'),
  region: 'auto',
  forcePathStyle: true,
  credentials: {
    accessKeyId: env('R2_ACCESS_KEY_ID'),
    secretAccessKey: env('R2_SECRET_ACCESS_KEY'),
  },
});

// the same cadence as kie-worker (docs/protocol.md, section 4): KIE's advice
function pollDelayMs(elapsedMs) {
  if (elapsedMs < 30000) return POLL_INITIAL_MS;
  if (elapsedMs < 120000) return Math.min(3 * POLL_INITIAL_MS, POLL_MAX_MS);
  return POLL_MAX_MS;
}

async function kie(method, path, body) {
  const res = await fetch(KIE_BASE_URL + path, {
    method,
    headers: {
      Authorization: `Bearer ${KIE_API_TOKEN}`,
      'Content-Type': 'application/json',
      'User-Agent': 'kie-bench-bullmq/1.0',
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30000),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`KIE ${path}: HTTP ${res.status}, not JSON`);
  }
  if (!res.ok || json.code !== 200) {
    const msg = `KIE ${path}: HTTP ${res.status}, code ${json.code}: ${json.msg ?? json.message}`;
    // 4xx verdicts other than rate limits are permanent for the job
    if ([400, 404, 422, 451, 505].includes(json.code)) throw new UnrecoverableError(msg);
    throw new Error(msg);
  }
  return json.data;
}

function putRecord(record) {
  return s3.send(new PutObjectCommand({
    Bucket: BUCKET,
    Key: `kie-tasks/${encodeURIComponent(record.taskId)}.json`,
    Body: JSON.stringify(record),
    ContentType: 'application/json',
  }));
}

const redis = new IORedis(REDIS_URL, { maxRetriesPerRequest: null });

async function create(job, token) {
  const d = job.data;
  const createdAt = new Date().toISOString();
  const data = await kie('POST', '/api/v1/jobs/createTask', {
    model: d.model ?? MODEL,
    input: { prompt: d.prompt, image_urls: d.imageUrls, output_format: d.outputFormat ?? 'png',
             aspect_ratio: d.ratio ?? '9:16' },
  });
  if (!data?.taskId) throw new Error('KIE createTask: no taskId in the answer');
  const record = {
    taskId: data.taskId, jobId: job.id, type: d.type ?? 'raw', model: d.model ?? MODEL,
    prompt: d.prompt, imageUrls: d.imageUrls, ratio: d.ratio ?? '9:16', status: 'pending',
    resultUrls: [], error: null, consumeCredits: null, costTime: null,
    createdAt, updatedAt: createdAt,
  };
  // the task id first: a retry of this job must poll it, not create another (paid) task
  await job.updateData({ ...d, step: 'poll', record, pollStartedAt: Date.now() });
  await putRecord(record);
  await job.moveToDelayed(Date.now() + pollDelayMs(0), token);
  throw new DelayedError();
}

async function poll(job, token) {
  const d = job.data;
  const elapsed = Date.now() - d.pollStartedAt;
  let state = 'generating';
  let task;
  if (elapsed > POLL_TIMEOUT_MS) {
    state = 'timeout';
  } else {
    task = await kie('GET', `/api/v1/jobs/recordInfo?taskId=${encodeURIComponent(d.record.taskId)}`);
    state = task.state;
  }
  if (!['success', 'fail', 'failed', 'timeout'].includes(state)) {
    await job.moveToDelayed(Date.now() + pollDelayMs(elapsed), token);
    throw new DelayedError();
  }
  const ok = state === 'success';
  let resultUrls = [];
  if (ok && task.resultJson) resultUrls = JSON.parse(task.resultJson).resultUrls ?? [];
  const error = ok ? null : state === 'timeout' ? 'timed out' : (task.failMsg ?? 'failed');
  const now = new Date().toISOString();
  const record = {
    ...d.record, status: ok ? 'completed' : 'failed', resultUrls, error,
    consumeCredits: task?.creditsConsumed ?? task?.consumeCredits ?? null,
    costTime: task?.costTime ?? null, updatedAt: now,
  };
  await putRecord(record);
  const event = {
    v: 1, event: ok ? 'job.completed' : 'job.failed', status: ok ? 'completed' : 'failed',
    jobId: job.id, taskId: record.taskId, type: record.type, resultUrls, error,
    credits: record.consumeCredits, costTime: record.costTime, attempts: job.attemptsMade + 1,
    finishedAt: now,
  };
  await redis.lpush(RESULTS_KEY, JSON.stringify(event));
  return { taskId: record.taskId, status: event.status };
}

const worker = new Worker(QUEUE, async (job, token) => {
  if ((job.data.step ?? 'create') === 'create') return create(job, token);
  return poll(job, token);
}, {
  connection: { url: REDIS_URL, maxRetriesPerRequest: null },
  concurrency: CONCURRENCY,
});

worker.on('failed', (job, err) => console.error(`job ${job?.id} failed: ${err.message}`));
worker.on('error', (err) => console.error(`worker error: ${err.message}`));

async function stop() {
  await worker.close();
  await redis.quit();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

await worker.waitUntilReady();
console.log('ready');
