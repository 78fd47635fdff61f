// The ceiling for any grpc-js CRI server: RuntimeService/Status answered with constant,
// pre-encoded bytes (the same three ready conditions the agent serves), no refresh, no metrics.
// Same grpc-js version, server options, socket kind and service definition as the agent, so the
// difference between the two is the agent's own work per call.
//
//   node dist/bench/constant-server.js --socket /tmp/x/constant.sock [--defer]
//
// --defer answers the same bytes the way the agent does, but without touching the disk: calls
// wait on one shared promise resolved from setImmediate (the agent's Refresher.fresh() with an
// empty refresh), which separates the cost of deferring the answer from the cost of the refresh.
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { handleUnaryCall } from '@grpc/grpc-js';
import { RuntimeServiceService } from '../src/gen/runtime/v1/api.js';
import { CONSTANT_STATUS_ANSWER } from './lib/constant-answer.js';
import type { StatusRequest } from '../src/gen/runtime/v1/api.js';

const { values } = parseArgs({ options: { socket: { type: 'string' }, defer: { type: 'boolean' } } });
const socket = values.socket;
if (!socket) {
  process.stderr.write('usage: constant-server.js --socket PATH\n');
  process.exit(2);
}

const answer = CONSTANT_STATUS_ANSWER;

const definition = {
  status: { ...RuntimeServiceService.status, responseSerialize: (value: Buffer): Buffer => value },
} as const;
let pending: Promise<Buffer> | undefined;
const shared = (): Promise<Buffer> =>
  (pending ??= new Promise((resolve) =>
    setImmediate(() => {
      pending = undefined;
      resolve(answer);
    }),
  ));
const status: handleUnaryCall<StatusRequest, Buffer> = values.defer
  ? (_call, callback) => void shared().then((bytes) => callback(null, bytes))
  : (_call, callback) => callback(null, answer);

const server = new Server({
  'grpc.max_receive_message_length': 16 * 1024,
  'grpc.max_concurrent_streams': 1024,
});
server.addService(definition, { status });
rmSync(socket, { force: true });
server.bindAsync(`unix:${socket}`, ServerCredentials.createInsecure(), (error) => {
  if (error) {
    process.stderr.write(`constant-server: cannot listen on ${socket}: ${error.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`constant-server: serving on ${socket}\n`);
});

const stop = (): void => {
  server.tryShutdown(() => {
    rmSync(socket, { force: true });
    process.exit(0);
  });
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
