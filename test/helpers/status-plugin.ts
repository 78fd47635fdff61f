// Real temp dirs holding the real CNI STATUS test plugin (test/fixtures/plugins/cni-status-test)
// and a network that runs it, for the integration tests and bench/plugin-status.ts.
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const STATUS_PLUGIN = fileURLToPath(
  new URL('../../../test/fixtures/plugins/cni-status-test', import.meta.url),
);

export interface PluginNode {
  confDir: string;
  binDir: string;
  conf: string;
  /** Switches the plugin's behaviour without rewriting the conf (its "modeFile"). */
  setMode(mode: string): void;
  /** Every invocation the plugin logged: "<CNI_COMMAND> <pid>". */
  calls(): string[];
  /** (Re)writes the network: one cni-status-test plugin with `extra` in its config. */
  writeConf(extra?: Record<string, unknown>, cniVersion?: string): void;
}

/** `root`/net.d with network "probe-net" running the plugin from `root`/plugins, in mode "ok". */
export function statusPluginNode(
  root: string,
  extra: Record<string, unknown> = {},
  cniVersion = '1.1.0',
): PluginNode {
  const confDir = join(root, 'net.d');
  const binDir = join(root, 'plugins');
  mkdirSync(confDir);
  mkdirSync(binDir);
  copyFileSync(STATUS_PLUGIN, join(binDir, 'cni-status-test'));
  chmodSync(join(binDir, 'cni-status-test'), 0o755);
  const modeFile = join(root, 'mode');
  const callLog = join(root, 'calls');
  const conf = join(confDir, '10-probe.conflist');
  const node: PluginNode = {
    confDir,
    binDir,
    conf,
    setMode: (mode) => writeFileSync(modeFile, `${mode}\n`),
    calls: () => {
      try {
        return readFileSync(callLog, 'utf8').split('\n').filter(Boolean);
      } catch {
        return [];
      }
    },
    writeConf: (more = extra, version = cniVersion) =>
      writeFileSync(
        conf,
        JSON.stringify({
          cniVersion: version,
          name: 'probe-net',
          plugins: [{ type: 'cni-status-test', modeFile, callLog, ...more }],
        }),
      ),
  };
  node.setMode('ok');
  node.writeConf();
  return node;
}
