// The V8 flags the RSS benchmark recommends for the Dockerfile and the chart (NODE_OPTIONS).
// bench/rss.ts measures every candidate; bench/cpu.ts measures the recommended set beside no flags,
// on the agent and on the constant grpc-js server. (Only flags NODE_OPTIONS accepts:
// --optimize-for-size and --lite-mode are refused there.)
//
// Why this set: V8's default young generation (semi-spaces growing to 16 MiB each) alone takes a
// grpc-js server past 100 MiB under load, agent or not. A 1 MiB semi-space keeps the agent under
// 80 MiB with no upward trend; one V8 platform thread instead of four saves a few MiB more and
// wins back part of the CPU the extra scavenges cost (on a 2-core node the pool mostly contends).
export const RECOMMENDED_NODE_OPTIONS = '--max-semi-space-size=1 --v8-pool-size=1';

export const CANDIDATE_NODE_OPTIONS: readonly string[] = [
  '',
  '--max-semi-space-size=1',
  '--max-semi-space-size=2',
  '--max-semi-space-size=1 --v8-pool-size=1',
  '--max-semi-space-size=2 --v8-pool-size=1',
  '--max-semi-space-size=1 --max-old-space-size=32',
];
