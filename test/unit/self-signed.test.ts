// The hand-encoded self-signed certificate, checked by parsers that did not write it: node:crypto's
// X509Certificate and a real TLS handshake.
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { test } from 'node:test';
import { createSecureContext } from 'node:tls';
import { generateSelfSigned } from '../../src/metrics/self-signed.js';

test('a self-signed serving certificate: parses, is signed by its own key, matches the key, names every host', () => {
  const now = new Date('2026-03-01T12:00:00Z');
  const generated = generateSelfSigned({
    commonName: 'node-a',
    hosts: ['node-a', 'localhost', '127.0.0.1', '::1', '2001:db8::7', '::ffff:192.0.2.1'],
    now,
  });
  const cert = new X509Certificate(generated.cert);
  assert.equal(cert.subject, 'CN=node-a');
  assert.equal(cert.issuer, 'CN=node-a');
  assert.equal(cert.ca, false);
  assert.ok(cert.verify(cert.publicKey), 'signed by its own key');
  assert.ok(cert.checkPrivateKey(createPrivateKey(generated.key)), 'the key belongs to the certificate');
  assert.equal(cert.fingerprint256, generated.fingerprint256);
  assert.match(generated.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  assert.equal(
    cert.subjectAltName,
    'DNS:node-a, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:2001:DB8:0:0:0:0:0:7, IP Address:0:0:0:0:0:FFFF:C000:201',
  );
  assert.equal(cert.checkHost('node-a'), 'node-a');
  assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
  assert.equal(cert.checkHost('other-node'), undefined);
  assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'extended key usage: serverAuth only');
  // Valid from an hour back (clock skew) for a year.
  assert.equal(new Date(cert.validFrom).toISOString(), '2026-03-01T11:00:00.000Z');
  assert.equal(new Date(cert.validTo).toISOString(), '2027-03-01T12:00:00.000Z');
  assert.doesNotThrow(() => createSecureContext({ cert: generated.cert, key: generated.key }));
});

test('validity past 2049 is encoded as GeneralizedTime, and two certificates never share a serial or key', () => {
  const generated = generateSelfSigned({
    commonName: 'x',
    hosts: ['localhost'],
    now: new Date('2049-12-01T00:00:00Z'),
    validityDays: 60,
  });
  const cert = new X509Certificate(generated.cert);
  assert.equal(new Date(cert.validTo).toISOString(), '2050-01-30T00:00:00.000Z');
  const other = new X509Certificate(generateSelfSigned({ commonName: 'x', hosts: ['localhost'] }).cert);
  assert.notEqual(cert.serialNumber, other.serialNumber);
  assert.notEqual(cert.fingerprint256, other.fingerprint256);
});
