// Everything a benchmark starts (processes, temp dirs) is registered here and torn down at the end,
// on failure, on SIGINT/SIGTERM and on a closed stdout, so no server, socket or temp dir outlives the run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Task = () => Promise<void> | void;
const tasks: Task[] = [];
let installed = false;

/** Registers a teardown step; steps run in reverse order. Returns a function that runs it early. */
export function onCleanup(task: Task): () => Promise<void> {
  install();
  tasks.push(task);
  return async () => {
    const at = tasks.indexOf(task);
    if (at >= 0) tasks.splice(at, 1);
    await task();
  };
}

export async function cleanupAll(): Promise<void> {
  while (tasks.length > 0) {
    const task = tasks.pop();
    try {
      await task?.();
    } catch (error) {
      process.stderr.write(`cleanup: ${String(error)}\n`);
    }
  }
}

/** A fresh temp dir with a short path (unix socket paths must stay under 108 bytes), removed at cleanup. */
export function tempDir(prefix = 'cnb-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The e2e harness's cleanup interface (startContainerd and friends) on top of onCleanup. */
export const harnessCleanup = {
  after(fn: () => unknown): void {
    onCleanup(async () => {
      await fn();
    });
  },
};

/** Runs `main`, prints what it returns, and always cleans up; exit code 1 on failure. */
export async function runScript(main: () => Promise<string>): Promise<void> {
  try {
    const out = await main();
    process.stdout.write(`${out}\n`);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  } finally {
    await cleanupAll();
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  // A closed pipe (`node dist/bench/cpu.js | head`) must not leave servers behind either.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', () => void cleanupAll().finally(() => process.exit(141)));
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping servers and removing temp dirs\n`);
      void cleanupAll().finally(() => process.exit(130));
    });
  }
}
