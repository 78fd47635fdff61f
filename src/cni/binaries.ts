// Plugin binary lookup in the CNI bin dirs (libcni's FindInPath). A refresh asks for every
// plugin in force, so answers are cached and the cache is dropped only when a bin dir's own
// stat changes (entries added, removed or renamed change the dir's mtime).
import { statSync } from 'node:fs';
import { join } from 'node:path';

export class BinaryLocator {
  private readonly found = new Map<string, boolean>();
  private dirsKey = '';

  constructor(readonly dirs: readonly string[]) {}

  /** Revalidates the cache; returns true when a bin dir changed since the last call. */
  revalidate(): boolean {
    const key = this.dirs
      .map((dir) => {
        const stats = statSync(dir, { throwIfNoEntry: false });
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
    let hit = this.found.get(type);
    if (hit === undefined) {
      hit = !type.includes('/') && type !== '' && this.dirs.some((dir) => isExecutableFile(join(dir, type)));
      this.found.set(type, hit);
    }
    return hit;
  }
}

function isExecutableFile(path: string): boolean {
  const stats = statSync(path, { throwIfNoEntry: false });
  return stats !== undefined && stats.isFile() && (stats.mode & 0o111) !== 0;
}
