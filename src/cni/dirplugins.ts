// libcni v1.3's plugin subdirectory (NetworkPluginConfsFromFiles): unless a list sets
// loadOnlyInlinedPlugins, `<conf dir>/<network name>/*.conf` are appended to its plugins, in name
// order, each decoded as one plugin. A bad file there fails the whole list, as in libcni.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { goExt, sortByBytes } from './files.js';
import { pluginConfFromBytes } from './libcni.js';
import type { LibcniVersion, PluginConf } from './libcni.js';
import { isErrno } from '../util/text.js';

export interface DirPlugins {
  /** Changes whenever the subdirectory or a file in it changes, so a cached list is re-read. */
  stamp: string;
  plugins: PluginConf[];
  /** libcni's error text when a plugin file cannot be read or decoded. */
  error?: string;
}

export function readDirPlugins(confDir: string, network: string, version: LibcniVersion): DirPlugins {
  // filepath.Join cleans the name, so "" and "." mean the conf dir itself, as in libcni.
  const dir = join(confDir, network);
  let names: string[];
  let stamp: string;
  try {
    const stats = statSync(dir);
    stamp = `${stats.ino}:${stats.mtimeMs}:${stats.ctimeMs}`;
    names = readdirSync(dir, { withFileTypes: true })
      .filter((entry) => !entry.isDirectory() && goExt(entry.name) === '.conf')
      .map((entry) => entry.name);
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return { stamp: 'none', plugins: [] };
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    return { stamp: 'error', plugins: [], error: `failed to read plugin config files in ${dir}: ${code}` };
  }
  const plugins: PluginConf[] = [];
  for (const name of sortByBytes(names)) {
    const path = join(dir, name);
    let bytes: Buffer;
    try {
      const stats = statSync(path);
      stamp += `|${name}:${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`;
      bytes = readFileSync(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      return { stamp, plugins: [], error: `error reading ${path}: ${code}` };
    }
    const plugin = pluginConfFromBytes(bytes, version);
    if (!plugin.ok) return { stamp, plugins: [], error: plugin.error.message };
    plugins.push(plugin.value);
  }
  return { stamp, plugins };
}
