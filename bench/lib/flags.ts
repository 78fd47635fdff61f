// The V8 flags the RSS benchmark recommends for the Dockerfile and the chart (NODE_OPTIONS).
// bench/rss.ts measures every candidate; bench/cpu.ts measures the recommended one beside the default.
// (Only flags NODE_OPTIONS accepts: --optimize-for-size and --lite-mode are refused there.)
export const RECOMMENDED_NODE_OPTIONS = '--max-semi-space-size=1';

export const CANDIDATE_NODE_OPTIONS: readonly string[] = [
  '',
  '--max-semi-space-size=1',
  '--max-semi-space-size=2',
  '--max-semi-space-size=1 --max-old-space-size=32',
  '--max-semi-space-size=1 --v8-pool-size=1',
];
