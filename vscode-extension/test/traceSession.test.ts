// TraceSession against an in-memory adapter model that honours replace
// semantics: what it traces is exactly the last set it was sent.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TraceSession, traceFunctionsArguments, traceFunctionsResults } from '../src/traceSession';
import { TraceEntry } from '../src/traceSet';

/** Resolves a position to the function declared last at or above it, like the adapter does from DWARF. */
function adapterModel(functions: { name: string; line: number }[]) {
  const state = { traced: [] as string[], requests: 0 };
  const resolve = (e: TraceEntry) => {
    if (e.regex !== undefined) {
      const re = new RegExp(e.regex);
      return functions.filter((f) => re.test(f.name));
    }
    const line = (e.position?.position.line ?? -1) + 1;
    const f = functions.filter((f) => f.line <= line).pop();
    return f ? [f] : [];
  };
  const send = async (command: string, args: unknown): Promise<unknown> => {
    assert.equal(command, 'traceFunctions');
    state.requests++;
    await new Promise((r) => setTimeout(r, 1));
    const entries = (args as { functions: TraceEntry[] }).functions;
    const results = entries.map((e) => {
      const found = resolve(e);
      return found.length === 0
        ? { verified: false, message: 'no function there' }
        : { verified: true, functions: found.map((f) => ({ name: f.name, source: { path: '/w/main.go' }, line: f.line })) };
    });
    state.traced = results.flatMap((r) => (r.functions ?? []).map((f) => f.name));
    return { functions: results };
  };
  return { state, send };
}

const at = (line: number): TraceEntry => ({
  position: { textDocument: { uri: 'file:///w/main.go' }, position: { line, character: 1 } },
});

test('add, duplicate, remove: the adapter ends up tracing exactly the set', async () => {
  const { state, send } = adapterModel([{ name: 'main.foo', line: 5 }, { name: 'main.main', line: 11 }]);
  const session = new TraceSession(send);
  const first = await session.add(at(6));
  assert.equal(first.added[0]?.functions[0]?.name, 'main.foo');
  assert.deepEqual(state.traced, ['main.foo']);

  const dup = await session.add(at(7));
  assert.equal(dup.duplicates.length, 1);
  assert.deepEqual(state.traced, ['main.foo'], 'the duplicate probe was dropped by a resend');

  await session.add({ regex: '^main\\.main$' });
  assert.deepEqual(state.traced, ['main.foo', 'main.main']);

  const entry = session.traceSet.entryAt('/w/main.go', 6);
  assert.ok(entry);
  await session.remove(entry);
  assert.deepEqual(state.traced, ['main.main']);
});

test('changes made back to back are sent in order and all arrive', async () => {
  const { state, send } = adapterModel([{ name: 'main.foo', line: 5 }, { name: 'main.bar', line: 20 }]);
  const session = new TraceSession(send);
  const results = await Promise.all([session.add(at(6)), session.add(at(21)), session.add({ regex: 'nomatch' })]);
  assert.deepEqual(state.traced, ['main.foo', 'main.bar']);
  // Each answer reports what its round resolved: the rejection is told once, by whichever round carried it.
  assert.deepEqual(results.flatMap((r) => r.rejected.map((x) => x.message)), ['no function there']);
  assert.equal(session.traceSet.size, 2);
  assert.equal(state.requests, 3);
});

test('a failed request rejects without blocking the next one', async () => {
  let fail = true;
  const session = new TraceSession(() => {
    if (fail) {
      fail = false;
      return Promise.reject(new Error('adapter gone'));
    }
    return Promise.resolve({ functions: [{ verified: true, functions: [] }] });
  });
  await assert.rejects(session.add({ regex: 'a' }), /adapter gone/);
  const outcome = await session.sync();
  assert.equal(outcome.rejected.length, 0);
});

test('the list is sent and read under `functions`, as docs/protocol.md says', () => {
  const entries: TraceEntry[] = [{ regex: 'a' }];
  assert.deepEqual(traceFunctionsArguments(entries), { functions: entries });
  const results = [{ verified: true }];
  assert.deepEqual(traceFunctionsResults({ functions: results }), { entries: results });
  assert.equal(traceFunctionsResults({ entries: results }), undefined);
  assert.equal(traceFunctionsResults({ other: [] }), undefined);
  assert.equal(traceFunctionsResults(undefined), undefined);
});
