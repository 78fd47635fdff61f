// The Node side of bench/client.py: one long-lived Python grpc.aio client per server, driven
// over stdin/stdout, so the server's CPU time can be sampled right around each run.
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { onCleanup } from './cleanup.js';
import { CLIENT_PY } from './util.js';

export const PYTHON3 = process.env.CRI_NETSTATUS_PYTHON3 ?? '/usr/bin/python3';

export interface LoadResult {
  calls: number;
  errors: number;
  seconds: number;
  throughput: number;
  p50_us: number;
  p99_us: number;
  max_us: number;
  first_error: string | null;
}

export class LoadClient {
  private readonly waiting: ((line: string) => void)[] = [];
  private stderr = '';
  private exited = false;
  private readonly stopEarly: () => Promise<void>;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly socket: string,
  ) {
    createInterface({ input: child.stdout }).on('line', (line) => this.waiting.shift()?.(line));
    child.stderr.on('data', (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString()).slice(-4000)));
    child.once('exit', () => {
      this.exited = true;
      for (const resolve of this.waiting.splice(0)) resolve('');
    });
    this.stopEarly = onCleanup(() => this.stop());
  }

  /** Starts a client connected to `socket` and waits until its channel is ready. */
  static async open(socket: string): Promise<LoadClient> {
    const child = spawn(PYTHON3, [CLIENT_PY, '--socket', socket, '--serve'], { stdio: 'pipe' });
    const client = new LoadClient(child, socket);
    const ready = await client.next();
    if (!ready.includes('"ready"')) throw new Error(`client for ${socket} did not start: ${client.stderr}`);
    return client;
  }

  /** `calls` Status calls at `concurrency`, bounded by `maxSeconds`. */
  async run(calls: number, concurrency: number, verbose = false, maxSeconds = 120): Promise<LoadResult> {
    this.child.stdin.write(`run ${calls} ${concurrency} ${verbose ? 1 : 0} ${maxSeconds}\n`);
    const line = await this.next();
    if (!line) throw new Error(`client for ${this.socket} exited: ${this.stderr}`);
    const result = JSON.parse(line) as LoadResult | { error: string };
    if ('error' in result) throw new Error(result.error);
    if (result.errors > 0) {
      throw new Error(
        `${result.errors} of ${result.calls} calls to ${this.socket} failed: ${result.first_error ?? ''}`,
      );
    }
    return result;
  }

  close(): Promise<void> {
    return this.stopEarly();
  }

  private next(): Promise<string> {
    if (this.exited) return Promise.resolve('');
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end('quit\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  }
}
