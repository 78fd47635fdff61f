// The agent's version, read once from package.json so there is one place to bump it.
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

export const VERSION: string = pkg.version;

export function versionInfo(): Record<string, string> {
  return { version: VERSION, node: process.version, platform: `${process.platform}/${process.arch}` };
}
