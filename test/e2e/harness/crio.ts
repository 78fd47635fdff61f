// CRI-O v1.34.0 (built by `scripts/peers.sh crio`) as a throwaway e2e peer: root, a temp dir with
// a short path (its unix socket must stay under 108 bytes) holding its config, storage (vfs), run
// dirs and logs; cgroupfs; Debian's conmon and runc; pinns_path=/bin/true (no pods are ever made:
// the tests only ask for Status); and the CNI conf dir and bin dir the test chooses. Nothing under
// /etc or /var is read or written: the config dir is an empty temp dir.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../../helpers/wait.js';
import { crictl, crictlInfo } from './containerd.js';
import type { Cleanup, CrictlInfo } from './containerd.js';
import { describeRun, run } from './peers.js';
import type { PeerPaths } from './peers.js';

export interface CrioOptions {
  /** The CNI conf dir CRI-O watches (network_dir). */
  confDir: string;
  /** The CNI plugin dir (plugin_dirs). */
  binDir: string;
  /** From requirePeers: the crio binary, conmon, runc and crictl. */
  peers: Pick<PeerPaths, 'crio' | 'conmon' | 'runc' | 'crictl'>;
  /** Added to CRI-O's environment (its plugins inherit it). */
  env?: NodeJS.ProcessEnv;
}

export interface Crio {
  /** unix:///…/crio.sock */
  endpoint: string;
  pid(): number | undefined;
  /** Everything CRI-O logged since the harness started it. */
  log(): string;
  /** SIGTERM and wait for the exit (SIGKILL after 10 s). */
  stop(): Promise<void>;
  info(): Promise<CrictlInfo>;
}

/** crio.conf for one throwaway instance (TOML; every path absolute and under `dir`). */
function crioConfig(dir: string, options: CrioOptions): string {
  const q = (value: string): string => JSON.stringify(value); // TOML basic strings escape like JSON
  return [
    '[crio]',
    `root = ${q(join(dir, 'root'))}`,
    `runroot = ${q(join(dir, 'run'))}`,
    'storage_driver = "vfs"',
    `log_dir = ${q(join(dir, 'pods'))}`,
    `version_file = ${q(join(dir, 'run', 'version'))}`,
    `version_file_persist = ${q(join(dir, 'version'))}`,
    `clean_shutdown_file = ${q(join(dir, 'clean.shutdown'))}`,
    '[crio.api]',
    `listen = ${q(join(dir, 'crio.sock'))}`,
    'stream_address = "127.0.0.1"',
    'stream_port = "0"',
    '[crio.runtime]',
    'cgroup_manager = "cgroupfs"',
    'conmon_cgroup = "pod"',
    'default_runtime = "runc"',
    'pinns_path = "/bin/true"',
    `namespaces_dir = ${q(join(dir, 'ns'))}`,
    `container_exits_dir = ${q(join(dir, 'exits'))}`,
    `container_attach_socket_dir = ${q(join(dir, 'attach'))}`,
    `decryption_keys_path = ${q(join(dir, 'keys'))}`,
    `irqbalance_config_file = ${q(join(dir, 'irqbalance'))}`,
    `irqbalance_config_restore_file = ${q(join(dir, 'orig_irq_banned_cpus'))}`,
    'hooks_dir = []',
    'cdi_spec_dirs = []',
    '[crio.runtime.runtimes.runc]',
    `runtime_path = ${q(options.peers.runc)}`,
    `runtime_root = ${q(join(dir, 'runc'))}`,
    `monitor_path = ${q(options.peers.conmon)}`,
    '[crio.image]',
    `signature_policy = ${q(join(dir, 'policy.json'))}`,
    `signature_policy_dir = ${q(join(dir, 'policies'))}`,
    '[crio.network]',
    `network_dir = ${q(options.confDir)}`,
    `plugin_dirs = [${q(options.binDir)}]`,
    '[crio.metrics]',
    'enable_metrics = false',
    '[crio.nri]',
    'enable_nri = false',
    '',
  ].join('\n');
}

/** Starts CRI-O and waits until `crictl version` answers; stopped (and its dir removed) at cleanup. */
export async function startCrio(cleanup: Cleanup, options: CrioOptions): Promise<Crio> {
  if (process.getuid?.() !== 0) {
    throw new Error('the CRI-O e2e peer must run as root (it sets up storage, mounts and cgroups)');
  }
  const dir = mkdtempSync('/tmp/crio-');
  const socket = join(dir, 'crio.sock');
  const endpoint = `unix://${socket}`;
  const config = join(dir, 'crio.conf');
  const configDir = join(dir, 'crio.conf.d'); // empty: /etc/crio/crio.conf.d must not leak in
  mkdirSync(configDir);
  writeFileSync(join(dir, 'policy.json'), '{"default":[{"type":"insecureAcceptAnything"}]}\n');
  writeFileSync(config, crioConfig(dir, options));

  let output = '';
  const child: ChildProcess = spawn(
    options.peers.crio,
    ['--config', config, '--config-dir', configDir, '--log-level', 'debug'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } },
  );
  let running = true;
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      running = false;
      resolve();
    }),
  );
  const stop = async (): Promise<void> => {
    if (!running) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  };
  cleanup.after(async () => {
    await stop();
    // vfs layers and run dirs may hold mounts only while CRI-O runs; it has exited by now.
    rmSync(dir, { recursive: true, force: true });
  });

  const deadline = Date.now() + 60_000;
  for (;;) {
    if (!running) throw new Error(`CRI-O exited during startup (config ${config}):\n${output.slice(-4000)}`);
    const result = await crictl(endpoint, ['version'], 10_000);
    if (result.code === 0 && /RuntimeName:\s+cri-o/.test(result.stdout)) break;
    if (Date.now() > deadline) {
      throw new Error(
        `CRI-O did not answer crictl version within 60s:\n${describeRun('crictl', ['version'], result)}\n--- crio log\n${output.slice(-4000)}`,
      );
    }
    await sleep(200);
  }
  return {
    endpoint,
    pid: () => (running ? child.pid : undefined),
    log: () => output,
    stop,
    info: () => crictlInfo(endpoint),
  };
}

/** `crio --version`'s first lines, for the test's diagnostics. */
export async function crioVersion(binary: string): Promise<string> {
  const result = await run(binary, ['--version'], { timeoutMs: 30_000 });
  return result.stdout.split('\n').slice(0, 2).join(' ').trim();
}
