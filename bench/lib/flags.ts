// The V8 flags the RSS benchmark recommends for the Dockerfile and the chart (NODE_OPTIONS).
// bench/rss.ts measures every candidate; bench/cpu.ts measures the recommended set beside no flags,
// on the agent and on the constant grpc-js server. (Only flags NODE_OPTIONS accepts:
// --optimize-for-size and --lite-mode are refused there.)
//
// Why this set: V8 grows its heap lazily, so under a hot Status loop any Node server passes 100 MiB
// (the constant grpc-js server too). Capping the old generation at 64 MiB makes V8 collect instead
// of grow (RSS flat at about 71 MiB over 200,000 calls), and with a 2 MiB young generation and one
// V8 platform thread it costs no measurable CPU per call. The live heap is a few MiB (about 25 more
// with --kube on), so 64 MiB leaves room; it also sits well inside the chart's 192Mi memory limit,
// so V8 collects before the kernel would OOM-kill the pod.
export const RECOMMENDED_NODE_OPTIONS = '--max-semi-space-size=2 --v8-pool-size=1 --max-old-space-size=64';

export const CANDIDATE_NODE_OPTIONS: readonly string[] = [
  '',
  '--max-semi-space-size=1 --v8-pool-size=1',
  '--max-semi-space-size=1 --v8-pool-size=1 --max-old-space-size=64',
  '--max-semi-space-size=2 --v8-pool-size=1 --max-old-space-size=64',
  '--max-semi-space-size=1 --v8-pool-size=1 --max-old-space-size=48',
  '--max-semi-space-size=1 --max-old-space-size=32',
];
