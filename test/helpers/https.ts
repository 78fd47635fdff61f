// HTTPS GETs for the metrics endpoint with --metrics-auth kubernetes: the status, body and the
// certificate the server presented, trusting only the CA the caller gives (or none, like
// Prometheus' insecure_skip_verify).
import { request } from 'node:https';
import { TLSSocket } from 'node:tls';

export interface HttpsAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** SHA-256 fingerprint of the certificate the server presented. */
  fingerprint256: string;
}

export function httpsGet(
  url: string,
  options: { token?: string; ca?: string | Buffer; timeoutMs?: number } = {},
): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        ...(options.ca ? { ca: options.ca } : { rejectUnauthorized: false }),
        headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
        timeout: options.timeoutMs ?? 15_000,
        agent: false,
      },
      (res) => {
        const fingerprint256 =
          res.socket instanceof TLSSocket ? res.socket.getPeerCertificate().fingerprint256 : '';
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, fingerprint256 }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}
