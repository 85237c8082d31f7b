// DAP framing: messages split across reads, several in one read, bad headers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeMessage, MessageReader } from '../src/framing';

test('a message read one byte at a time comes out once, whole', () => {
  const message = { type: 'event', seq: 1, event: 'output', body: { output: 'é ünïcode\n' } };
  const bytes = encodeMessage(message);
  const reader = new MessageReader();
  const out: unknown[] = [];
  for (const byte of bytes) {
    out.push(...reader.push(Buffer.from([byte])));
  }
  assert.deepEqual(out, [message]);
});

test('two messages in one read', () => {
  const a = { seq: 1 };
  const b = { seq: 2 };
  assert.deepEqual(new MessageReader().push(Buffer.concat([encodeMessage(a), encodeMessage(b)])), [a, b]);
});

test('a header without Content-Length is an error', () => {
  assert.throws(() => new MessageReader().push(Buffer.from('X: 1\r\n\r\n{}')), /Content-Length/);
});
