// The peer for `stockx-sync bench`: graphile-worker's burn-down and insert → start latency,
// measured the way our bench measures ours, so the two can run alternately in one session.
//
//   mkdir -p /tmp/gw && cd /tmp/gw && npm install graphile-worker@0.16
//   NODE_PATH=/tmp/gw/node_modules node bench/peer_graphile_worker.js \
//       postgres://postgres@127.0.0.1/postgres [jobs=20000] [concurrency=8] \
//       [queue_commit=off] [insert_commit=server] [latency_samples=300]
//
// It works in a scratch database it creates and drops. Every figure says how its commits were
// made: the worker's connections use `queue_commit`, the timed inserts use `insert_commit`
// (`server`: as the server is configured).
"use strict";
const { run, runMigrations } = require("graphile-worker");
const { Client, Pool } = require("pg");

const [url, jobs = "20000", concurrency = "8", queueCommit = "off", insertCommit = "server", samples = "300"] =
  process.argv.slice(2);
if (!url) {
  console.error("usage: peer_graphile_worker.js DATABASE_URL [jobs] [concurrency] [queue_commit] [insert_commit] [latency_samples]");
  process.exit(2);
}

function withDatabase(base, database, commit) {
  const u = new URL(base);
  u.pathname = "/" + database;
  if (commit !== "server") u.searchParams.set("options", `-c synchronous_commit=${commit}`);
  return u.toString();
}

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms

function percentile(sorted, p) {
  // As `stockx-sync bench` picks it: the sample at round((n - 1) * p).
  return sorted[Math.round((sorted.length - 1) * (p / 100))];
}

async function main() {
  const database = `gw_bench_${process.pid}`;
  const admin = new Client({ connectionString: url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database}`);
  const serverCommit = (await admin.query("SHOW synchronous_commit")).rows[0].synchronous_commit;
  const label = (mode) => (mode === "server" ? `${serverCommit} (server)` : mode);
  const workerUrl = withDatabase(url, database, queueCommit);
  // The workers' pool is ours (graphile-worker's default size), so that it is closed before
  // the scratch database is dropped: graphile-worker ends its own pool without waiting, and
  // a connection the drop then terminates would crash node with an unhandled 'error'.
  const pgPool = new Pool({ connectionString: workerUrl, max: 10 });
  pgPool.on("error", () => {});
  try {
    await runMigrations({ connectionString: workerUrl });
    const n = Number(jobs);
    const setup = new Client({ connectionString: withDatabase(url, database, "off") });
    await setup.connect();
    await setup.query("SELECT graphile_worker.add_job('noop') FROM generate_series(1, $1)", [n]);

    // Burn-down: from the worker's start to the last completion committed.
    let done = 0;
    const started = now();
    const runner = await run({
      pgPool,
      concurrency: Number(concurrency),
      noHandleSignals: true,
      pollInterval: 2000,
      logger: quietLogger(),
      taskList: { noop: async () => { done++; } },
    });
    const startup = now() - started;
    for (;;) {
      const left = Number((await setup.query("SELECT count(*) FROM graphile_worker._private_jobs")).rows[0].count);
      if (left === 0) break;
      await new Promise((r) => setTimeout(r, done >= n ? 1 : 20));
    }
    const seconds = (now() - started) / 1000;
    console.log(
      `graphile-worker burn-down: ${n} no-op jobs, concurrency ${concurrency}, queue synchronous_commit=${label(queueCommit)}: ` +
        `${seconds.toFixed(2)} s (${(startup / 1000).toFixed(3)} s of it start-up), ${(n / seconds).toFixed(0)} jobs/s`,
    );
    await runner.stop();

    // Insert → start: one job at a time into an idle worker, timed from before the INSERT.
    const waiting = new Map();
    const latencies = [];
    const idle = await run({
      pgPool,
      concurrency: Number(concurrency),
      noHandleSignals: true,
      pollInterval: 2000,
      logger: quietLogger(),
      taskList: {
        timed: async (payload) => {
          const t = now();
          const resolve = waiting.get(payload.i);
          if (resolve) resolve(t);
        },
      },
    });
    const inserter = new Client({ connectionString: withDatabase(url, database, insertCommit) });
    await inserter.connect();
    for (let i = 0; i < Number(samples); i++) {
      const startedJob = new Promise((resolve) => waiting.set(i, resolve));
      const before = now();
      await inserter.query("SELECT graphile_worker.add_job('timed', json_build_object('i', $1::int))", [i]);
      latencies.push((await startedJob) - before);
      waiting.delete(i);
    }
    latencies.sort((a, b) => a - b);
    console.log(
      `graphile-worker insert → job start (${samples} single add_job calls, insert synchronous_commit=${label(insertCommit)}, ` +
        `queue synchronous_commit=${label(queueCommit)}): p50 ${percentile(latencies, 50).toFixed(2)} ms, ` +
        `p95 ${percentile(latencies, 95).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms, ` +
        `max ${latencies[latencies.length - 1].toFixed(2)} ms`,
    );
    await idle.stop();
    await inserter.end();
    await setup.end();
  } finally {
    await pgPool.end();
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
  }
}

function quietLogger() {
  const { Logger } = require("graphile-worker");
  return new Logger(() => (level, message) => {
    if (level === "error") console.error(message);
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
