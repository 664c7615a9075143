// where.mjs — where is my job, from Node (the `redis` npm client): one documented command,
// FCALL_RO kie_position (docs/protocol.md, "Where is my job?"); with "cancel", FCALL
// kie_cancel. Prints the function's JSON answer.
// usage: node scripts/node/where.mjs [position|cancel] JOB_ID [REPLY_TO_KEY]
// Environment: REDIS_URL, KIE_REDIS_PREFIX (defaults redis://127.0.0.1:6379/0, kie).
import { createClient } from "redis";

const [what, id, replyTo] = process.argv.length > 3 ? process.argv.slice(2)
                                                      : ["position", process.argv[2]];
const p = process.env.KIE_REDIS_PREFIX ?? "kie";
const s = `${p}:sched:default`;
// the same 11 keys for both functions; the last is the job's replyTo list, when it has one
const keys = [`${p}:job:${id}`, `${p}:cancel:${id}`, `${s}:ready`, `${s}:delayed`,
              `${s}:items`, `${s}:state`, `${s}:gcount`, `${p}:stats`, `${p}:results`,
              `${s}:parked`, replyTo ?? `${p}:job:${id}`];
const client = createClient({ url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379/0" });
client.on("error", (err) => console.error("redis:", err.message));
await client.connect();
const cmd = what === "cancel" ? ["FCALL", "kie_cancel"] : ["FCALL_RO", "kie_position"];
const answer = JSON.parse(await client.sendCommand([...cmd, String(keys.length), ...keys, id]));
console.log(JSON.stringify(answer));
await client.quit();
