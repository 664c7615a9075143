// produce.mjs — enqueue kie-worker jobs from Node (the `redis` npm client) and wait for
// their completion events. usage: node scripts/node/produce.mjs [count]
// Environment: REDIS_URL, KIE_REDIS_PREFIX (defaults redis://127.0.0.1:6379/0, kie).
import { createClient } from "redis";
import { randomUUID } from "node:crypto";

const prefix = process.env.KIE_REDIS_PREFIX ?? "kie";
const count = Number(process.argv[2] ?? 1);
const client = createClient({ url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379/0" });
client.on("error", (err) => console.error("redis:", err.message));
await client.connect();

const reply = `${prefix}:replies:node-${randomUUID().slice(0, 8)}`;
const pending = new Set();
for (let i = 0; i < count; i++) {
  const job = {
    v: 1,
    id: `node-${randomUUID()}`,
    type: "model_pose",
    input: { imageUrl: "https://example.com/model.png", pose: "hands in pockets" },
    replyTo: reply,
    meta: { producer: "node" },
  };
  pending.add(job.id);
  await client.lPush(`${prefix}:queue`, JSON.stringify(job));
}
console.error(`enqueued ${count} job(s); replies on ${reply}`);

let status = 0;
while (pending.size > 0) {
  const got = await client.brPop(reply, Number(process.env.WAIT_S ?? 120));
  if (got === null) {
    console.error(`timed out; ${pending.size} job(s) without an event`);
    status = 1;
    break;
  }
  const event = JSON.parse(got.element);
  pending.delete(event.jobId);
  console.log(JSON.stringify(event));
}
await client.quit();
process.exit(status);
