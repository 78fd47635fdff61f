// A raw HTTP/2 client on a real unix socket, for what grpc-js will not do: hold a request half
// sent, declare one length and send another, send grpc-web, count SETTINGS.
import { connect } from 'node:http2';
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders } from 'node:http2';
import { connect as netConnect } from 'node:net';

export interface RawAnswer {
  /** Response headers (trailers-only answers carry grpc-status here). */
  headers: IncomingHttpHeaders;
  trailers: IncomingHttpHeaders;
  body: Buffer;
  /** The RST_STREAM code the stream ended with (0 when it ended cleanly). */
  rstCode: number;
}

/** An HTTP/2 connection to a unix socket; resolves once the server's SETTINGS arrived. */
export function h2Session(socket: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = connect('http://localhost', { createConnection: () => netConnect(socket) });
    session.once('remoteSettings', () => resolve(session));
    session.once('error', reject);
    session.once('close', () => reject(new Error('the connection closed before SETTINGS')));
  });
}

/** gRPC's 5-byte prefix: uncompressed, big-endian `declared` length (default: the message's). */
export function grpcFrame(message: Buffer, declared = message.length): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(declared, 1);
  return Buffer.concat([prefix, message]);
}

/** Starts a POST on `path`; sends `body` and ends the request unless `end` is false. */
export function rawRequest(
  session: ClientHttp2Session,
  path: string,
  body: Buffer,
  { end = true, contentType = 'application/grpc' }: { end?: boolean; contentType?: string } = {},
): { stream: ClientHttp2Stream; answer: Promise<RawAnswer> } {
  const stream = session.request({
    ':method': 'POST',
    ':path': path,
    'content-type': contentType,
    te: 'trailers',
  });
  const answer = new Promise<RawAnswer>((resolve) => {
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (received: IncomingHttpHeaders) => (headers = received));
    stream.on('trailers', (received: IncomingHttpHeaders) => (trailers = received));
    const done = (): void =>
      resolve({ headers, trailers, body: Buffer.concat(chunks), rstCode: stream.rstCode ?? 0 });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', () => undefined);
    // 'end': the server answered while the request is still open (the stream closes only once both sides end).
    stream.once('end', done);
    stream.once('close', done);
  });
  if (body.length > 0) stream.write(body);
  if (end) stream.end();
  return { stream, answer };
}

/** The gRPC status of an answer: from its trailers, or from the headers of a trailers-only answer. */
export function grpcStatusOf(answer: RawAnswer): { code: number; message: string } | undefined {
  const raw = answer.trailers['grpc-status'] ?? answer.headers['grpc-status'];
  if (raw === undefined) return undefined;
  const message = answer.trailers['grpc-message'] ?? answer.headers['grpc-message'] ?? '';
  return { code: Number(raw), message: decodeURIComponent(String(message)) };
}
