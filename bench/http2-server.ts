// A reference point below grpc-js: RuntimeService/Status answered with the same constant bytes as
// bench/constant-server.ts, but straight from node:http2 (gRPC framing by hand: a 5-byte message
// prefix, grpc-status in trailers). Anything else is answered UNIMPLEMENTED. Not a server to ship;
// it shows how much of a grpc-js server's CPU time per call is grpc-js itself.
//
//   node dist/bench/http2-server.js --socket /tmp/x/http2.sock
import { rmSync } from 'node:fs';
import { constants, createServer } from 'node:http2';
import type { ServerHttp2Stream } from 'node:http2';
import { parseArgs } from 'node:util';
import { CONSTANT_STATUS_ANSWER } from './lib/constant-answer.js';

const { values } = parseArgs({ options: { socket: { type: 'string' } } });
const socket = values.socket;
if (!socket) {
  process.stderr.write('usage: http2-server.js --socket PATH\n');
  process.exit(2);
}

const message = CONSTANT_STATUS_ANSWER;
const framed = Buffer.alloc(5 + message.length);
framed.writeUInt32BE(message.length, 1);
framed.set(message, 5);

const OK_HEADERS = {
  [constants.HTTP2_HEADER_STATUS]: 200,
  [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
};
const OK_TRAILERS = { 'grpc-status': '0' };
const UNIMPLEMENTED = { ...OK_HEADERS, 'grpc-status': '12', 'grpc-message': 'unimplemented' };

function answer(stream: ServerHttp2Stream, path: string | undefined): void {
  if (path !== '/runtime.v1.RuntimeService/Status') {
    stream.respond(UNIMPLEMENTED, { endStream: true });
    return;
  }
  stream.respond(OK_HEADERS, { waitForTrailers: true });
  stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
  stream.end(framed);
}

const server = createServer({ maxSessionMemory: 10 });
server.on('stream', (stream, headers) => {
  const path = headers[constants.HTTP2_HEADER_PATH];
  stream.on('data', () => undefined); // the request (StatusRequest) is not needed
  stream.once('end', () => answer(stream, typeof path === 'string' ? path : undefined));
  stream.on('error', () => undefined);
});
rmSync(socket, { force: true });
server.listen(socket, () => process.stdout.write(`http2-server: serving on ${socket}\n`));

const stop = (): void => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
