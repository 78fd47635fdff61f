// Plugin binary lookup in the CNI bin dirs (libcni's FindInPath). A refresh asks for every
// plugin in force, so found binaries are cached until a bin dir's own stat changes (entries
// added, removed or renamed change the dir's mtime). Missing ones are looked up again every time:
// a chmod +x or a create within one timestamp tick leaves the dir's stat as it was.
import { statSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { join } from 'node:path';

export class BinaryLocator {
  private readonly found = new Map<string, true>();
  private dirsKey = '';

  /** `onDisk` maps a path to the one to stat (`check --host-root` resolves links under the root). */
  constructor(
    readonly dirs: readonly string[],
    private readonly onDisk: (path: string) => string = (path) => path,
  ) {}

  /** Revalidates the cache; returns true when a bin dir changed since the last call. */
  revalidate(): boolean {
    const key = this.dirs
      .map((dir) => {
        const stats = statQuietly(() => this.onDisk(dir));
        return stats ? `${stats.ino}:${stats.mtimeMs}:${stats.ctimeMs}` : '-';
      })
      .join('|');
    if (key === this.dirsKey) return false;
    this.dirsKey = key;
    this.found.clear();
    return true;
  }

  /** Plugin types with no executable of that name in any bin dir (a `/` in a type never resolves). */
  missing(types: readonly string[]): string[] {
    return types.filter((type) => !this.exists(type));
  }

  private exists(type: string): boolean {
    if (this.found.get(type)) return true;
    const hit =
      !type.includes('/') &&
      type !== '' &&
      this.dirs.some((dir) => isExecutableFile(() => this.onDisk(join(dir, type))));
    if (hit) this.found.set(type, true);
    return hit;
  }
}

function isExecutableFile(path: () => string): boolean {
  const stats = statQuietly(path);
  return stats !== undefined && stats.isFile() && (stats.mode & 0o111) !== 0;
}

/** stat(2) for a lookup: any error (missing, a NUL byte or an overlong name in a plugin type, EACCES, ELOOP) means "not there". */
function statQuietly(path: () => string): Stats | undefined {
  try {
    return statSync(path(), { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}
