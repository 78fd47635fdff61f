// The metrics endpoint's limits, on a real HTTP server: it listens on the host network, so idle
// or slow connections must not pile up.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { MAX_HTTP_CONNECTIONS, startHttpEndpoint } from '../../src/metrics/http.js';

test('past 64 connections a new one is closed at once; the endpoint serves again once one goes', async (t) => {
  const server = await startHttpEndpoint({
    address: { host: '127.0.0.1', port: 0 },
    registry: new Registry(),
    ready: () => ({ ok: true }),
  });
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  assert.equal(server.headersTimeout, 10_000);
  assert.equal(server.requestTimeout, 30_000);
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  const open = (): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const socket = connect(address.port, '127.0.0.1', () => resolve(socket));
      socket.once('error', reject);
    });
  const held: Socket[] = [];
  t.after(() => held.forEach((socket) => socket.destroy()));
  for (let i = 0; i < MAX_HTTP_CONNECTIONS; i++) held.push(await open());
  /** One GET /healthz on a new connection: the raw answer, '' when closed without one. */
  const get = async (): Promise<string> => {
    const socket = await open();
    return new Promise<string>((resolve) => {
      let data = '';
      socket.on('data', (chunk: Buffer) => {
        data += chunk.toString();
        if (data.includes('\r\n\r\n')) socket.destroy();
      });
      socket.once('close', () => resolve(data));
      socket.on('error', () => undefined);
      socket.setTimeout(5000, () => socket.destroy());
      socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    });
  };
  assert.equal(await get(), '', 'closed without an answer');
  held.pop()?.destroy();
  let answer = '';
  for (let i = 0; i < 100 && !answer.startsWith('HTTP/1.1 200'); i++) {
    answer = await get();
    if (!answer) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.match(answer, /^HTTP\/1\.1 200/);
});
