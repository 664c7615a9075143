// produce.mjs — enqueues N jobs for bench/bullmq/worker.mjs with Queue.addBulk, the same
// jobs bench/compare.py LPUSHes for kie-worker (id b-<i>, prompt "bench", one image).
// usage: REDIS_URL=... node produce.mjs N   (BENCH_QUEUE, default kie)
import { Queue } from 'bullmq';

const n = Number(process.argv[2]);
if (!Number.isInteger(n) || n < 1) {
  console.error('usage: node produce.mjs N (a positive integer)');
  process.exit(2);
}
const queue = new Queue(process.env.BENCH_QUEUE || 'kie', {
  connection: { url: process.env.REDIS_URL },
  // what a BullMQ user sets so that Redis does not keep every finished job forever, and
  // kie-worker's three createTask attempts
  defaultJobOptions: {
    attempts: 3, backoff: { type: 'exponential', delay: 1000 },
    removeOnComplete: { count: 1000 }, removeOnFail: { count: 5000 },
  },
});
const CHUNK = 1000;
for (let i = 0; i < n; i += CHUNK) {
  const jobs = [];
  for (let j = i; j < Math.min(n, i + CHUNK); j++) {
    jobs.push({ name: 'raw', data: { type: 'raw', prompt: 'bench',
                imageUrls: ['https://a.b/c.png'] }, opts: { jobId: `b-${j}` } });
  }
  await queue.addBulk(jobs);
}
console.log(await queue.count());
await queue.close();
