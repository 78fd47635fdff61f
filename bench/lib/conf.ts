// CNI config files for the benchmarks: real plugins from /usr/lib/cni (Debian's
// containernetworking-plugins), so both the agent and containerd find every binary.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CNI_BIN_DIR = process.env.CRI_NETSTATUS_CNI_BIN_DIR ?? '/usr/lib/cni';

export function conflist(name: string, subnet = '10.88.0.0/16'): string {
  return `${JSON.stringify(
    {
      cniVersion: '1.0.0',
      name,
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          ipMasq: true,
          ipam: { type: 'host-local', ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  )}\n`;
}

/** Writes `file` in `dir` atomically: a temp name no CNI loader looks at, then rename. */
export function writeAtomic(dir: string, file: string, content: string): void {
  const temp = join(dir, `.${file}.tmp`);
  writeFileSync(temp, content);
  renameSync(temp, join(dir, file));
}
