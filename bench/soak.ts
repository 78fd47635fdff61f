// Soak: the agent (the image's NODE_OPTIONS) under kubelet-like polling for `--minutes` (30 by
// default), its conf dir rewritten every 3 s, and an abusive burst every `--burst-every` minutes
// (2 by default, the first at the start of minute 2): 2,000 Health.Watch streams on 20 connections, 200
// requests that never finish arriving and 500 idle connections, held 10 s and released. Prints one
// row per minute: RSS, open fds, event-loop lag p99 (the agent's own nodejs_eventloop_lag_p99_seconds,
// which prom-client resets at every scrape) and Status p99. Flat RSS and fds are the pass line.
//
//   npm run build && node dist/bench/soak.js [--minutes 30] [--burst-every 2]
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import type { ClientHttp2Session } from 'node:http2';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sampleValue, startServeProcess } from '../test/helpers/agent.js';
import { conflist, writeAtomic } from '../test/helpers/fs.js';
import { grpcFrame, h2Session, rawRequest } from '../test/helpers/h2.js';
import { runScript, tempDir } from './lib/cleanup.js';
import { RECOMMENDED_NODE_OPTIONS } from './lib/flags.js';
import { machineFacts } from './lib/machine.js';
import { MiB, rssBytes } from './lib/proc.js';
import { commandLine, fmt, intFlag, isMain, percentile, sleep, table } from './lib/util.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

interface Burst {
  release(): void;
}

async function burst(socket: string): Promise<Burst> {
  const sessions: ClientHttp2Session[] = [];
  const sockets: Socket[] = [];
  for (let c = 0; c < 22; c++) {
    const session = await h2Session(socket);
    session.on('error', () => undefined);
    sessions.push(session);
    for (let i = 0; i < 100; i++) {
      if (c < 20) rawRequest(session, '/grpc.health.v1.Health/Watch', grpcFrame(Buffer.alloc(0)));
      else
        rawRequest(session, '/runtime.v1.RuntimeService/Status', grpcFrame(Buffer.alloc(10), 1000), {
          end: false,
        });
    }
  }
  for (let i = 0; i < 500; i++) {
    const conn = connect(socket);
    conn.on('error', () => undefined);
    conn.write(PREFACE);
    sockets.push(conn);
  }
  return {
    release: () => {
      sessions.forEach((session) => session.destroy());
      sockets.forEach((conn) => conn.destroy());
    },
  };
}

export async function soakBenchmark(): Promise<string> {
  const dir = tempDir('cns-soak-');
  const minutes = intFlag('minutes', 30);
  const burstEvery = intFlag('burst-every', 2);
  const confDir = join(dir, 'net.d');
  const binDir = join(dir, 'bin');
  mkdirSync(confDir);
  mkdirSync(binDir);
  writeFileSync(join(binDir, 'bridge'), '#!/bin/sh\n', { mode: 0o755 });
  for (let i = 0; i < 10; i++) writeFileSync(join(confDir, `${10 + i}-net.conflist`), conflist(`net-${i}`));
  const socket = join(dir, 'cri.sock');
  const agent = await startServeProcess(
    socket,
    ['--cni-conf-dir', confDir, '--cni-bin-dir', binDir, '--kube', 'off'],
    { NODE_OPTIONS: RECOMMENDED_NODE_OPTIONS },
  );
  const rows: string[][] = [];
  const started = Date.now();
  let rewrites = 0;
  let lastRewrite = started;
  let held: Burst | undefined;
  let heldAt = 0;
  let bursts = 0;
  try {
    await fetch(agent.metricsUrl).then((response) => response.text()); // resets the lag histogram
    for (let minute = 1; minute <= minutes; minute++) {
      const latencies: number[] = [];
      let failures = 0;
      let maxRss = 0;
      const end = started + minute * 60_000;
      while (Date.now() < end) {
        const tick = Date.now();
        const begin = performance.now();
        await agent.client.status().then(
          () => latencies.push(performance.now() - begin),
          () => failures++,
        );
        if (tick - lastRewrite >= 3000) {
          writeAtomic(join(confDir, '10-net.conflist'), conflist(`net-0-${++rewrites % 2}`));
          lastRewrite = tick;
        }
        // A burst at the start of minutes 2, 2 + burstEvery, ...: held 10 s, then released.
        const burstMinute = minute > 1 && (minute - 2) % burstEvery === 0;
        if (burstMinute && !held && bursts < Math.floor((minute - 2) / burstEvery) + 1) {
          held = await burst(socket);
          heldAt = tick;
          bursts++;
        }
        if (held && tick - heldAt >= 10_000) {
          held.release();
          held = undefined;
        }
        maxRss = Math.max(maxRss, rssBytes(agent.pid));
        await sleep(Math.max(0, 1000 - (Date.now() - tick)));
      }
      const metrics = await fetch(agent.metricsUrl).then((response) => response.text());
      const lag = sampleValue(metrics, 'nodejs_eventloop_lag_p99_seconds') ?? Number.NaN;
      latencies.sort((a, b) => a - b);
      rows.push([
        String(minute),
        fmt(rssBytes(agent.pid) / MiB, 1),
        fmt(maxRss / MiB, 1),
        String(readdirSync(`/proc/${agent.pid}/fd`).length),
        fmt(lag * 1000, 1),
        fmt(percentile(latencies, 0.99), 2),
        `${latencies.length} / ${failures}`,
        minute > 1 && (minute - 2) % burstEvery === 0 ? 'burst' : '',
      ]);
      process.stderr.write(`minute ${minute}: ${rows.at(-1)?.join(' | ') ?? ''}\n`);
    }
  } finally {
    held?.release();
    await agent.stop();
  }
  const first = rows[0];
  const last = rows.at(-1);
  const rssGrowth = Number(last?.[1]) - Number(first?.[1]);
  const fdGrowth = Number(last?.[3]) - Number(first?.[3]);
  return [
    `### Soak (${minutes} min, Status every 1 s, a conf rewrite every 3 s, a burst every ${burstEvery} min)`,
    '',
    table(
      [
        'minute',
        'RSS at end MiB',
        'max RSS MiB',
        'open fds',
        'event-loop lag p99 ms',
        'Status p99 ms',
        'Status calls / failed',
        '',
      ],
      rows,
    ),
    '',
    `- RSS from minute 1 to the last: ${rssGrowth >= 0 ? '+' : ''}${fmt(rssGrowth, 1)} MiB; open fds ${fdGrowth >= 0 ? '+' : ''}${fdGrowth} (pass line: flat).`,
    `- command: \`${commandLine('soak')}\``,
  ].join('\n');
}

if (isMain(import.meta.url)) {
  await runScript(async () => `${machineFacts()}\n\n${await soakBenchmark()}`);
}
