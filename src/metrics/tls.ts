// The metrics endpoint's serving certificate: from --metrics-tls-cert/--metrics-tls-key (a mounted
// Secret, e.g. from cert-manager) and reloaded when those files change, or self-signed at start.
// A changed pair that does not load (half-written, cert and key not matching) is reported and the
// pair in use is kept, as the CNI config's last good content is.
import { ConfigError } from '../errors.js';
import { errorText } from '../util/text.js';
import { createSecureContext } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

export interface KeyPair {
  cert: Buffer | string;
  key: Buffer | string;
  /** SHA-256 fingerprint and expiry, for logs. */
  fingerprint256: string;
  validTo: string;
}

/** Reads and checks a certificate and key; throws an error naming the file and what is wrong. */
export function loadKeyPair(certFile: string, keyFile: string): KeyPair {
  const cert = readPem(certFile, '--metrics-tls-cert');
  const key = readPem(keyFile, '--metrics-tls-key');
  let parsed: X509Certificate;
  try {
    parsed = new X509Certificate(cert);
  } catch (error) {
    throw new ConfigError(`--metrics-tls-cert ${certFile} is not a PEM certificate: ${errorText(error)}`);
  }
  try {
    createSecureContext({ cert, key }); // also checks that the key belongs to the certificate
  } catch (error) {
    throw new ConfigError(
      `--metrics-tls-key ${keyFile} cannot serve --metrics-tls-cert ${certFile}: ${errorText(error)}`,
    );
  }
  return { cert, key, fingerprint256: parsed.fingerprint256, validTo: parsed.validTo };
}

export interface KeyPairWatch {
  stop(): void;
}

/**
 * Polls both files (stat follows symlinks, so a Secret volume's `..data` swap shows as a new inode)
 * and calls onReload with the new pair once it loads. Polling, not fs.watch: a watch on a file in
 * a Secret volume is lost at the first symlink swap.
 */
export function watchKeyPair(
  certFile: string,
  keyFile: string,
  options: { intervalMs: number; onReload: (pair: KeyPair) => void; onError: (error: Error) => void },
): KeyPairWatch {
  let seen = identity(certFile, keyFile);
  let lastError = '';
  const timer = setInterval(() => {
    const now = identity(certFile, keyFile);
    if (now === seen) return;
    try {
      const pair = loadKeyPair(certFile, keyFile);
      seen = now;
      lastError = '';
      options.onReload(pair);
    } catch (error) {
      // Not marked as seen: a pair caught half-written is tried again on the next tick.
      const failure = error instanceof Error ? error : new Error(String(error));
      if (failure.message !== lastError) options.onError(failure);
      lastError = failure.message;
    }
  }, options.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

function identity(...files: string[]): string {
  return files
    .map((file) => {
      try {
        const s = statSync(file);
        return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
      } catch (error) {
        return (error as NodeJS.ErrnoException).code ?? 'error';
      }
    })
    .join('|');
}

function readPem(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new ConfigError(
      `${flag}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? errorText(error)})`,
    );
  }
}
