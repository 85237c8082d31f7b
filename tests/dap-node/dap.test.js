// Drives the real `logprobe dap` with @vscode/debugadapter-testsupport's
// DebugClient (the client VS Code's own adapters are tested with), over
// stdio and over TCP, against the seed and attach fixtures, under every
// backend in LOGPROBE_BACKENDS (default: ptrace,ebpf).
'use strict';

const { test } = require('node:test');
const assert = require('node:assert');
const cp = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { DebugClient } = require('@vscode/debugadapter-testsupport');
const Ajv = require('ajv-draft-04');

const root = path.resolve(__dirname, '../..');
const logprobe = process.env.LOGPROBE || path.join(root, 'target/release/logprobe');
const backends = (process.env.LOGPROBE_BACKENDS || 'ptrace,ebpf').split(',');
const seedSource = path.join(root, 'fixtures/go/seed/main.go');
const attachSource = path.join(root, 'fixtures/go/attach/main.go');
const TIMEOUT = 30000;

// Every message the adapter sends is checked against the official DAP
// schema (tests/dap-schema): `<Command>Response` (`ErrorResponse` when it
// failed), `<Event>Event`, else the base `Response`/`Event` for custom ones.
const schema = JSON.parse(fs.readFileSync(path.join(root, 'tests/dap-schema/debugAdapterProtocol.json'), 'utf8'));
const ajv = new Ajv({ allErrors: true, strict: false });
// The schema's integer formats, as ranges.
for (const [name, lo, hi] of [['int32', -(2 ** 31), 2 ** 31 - 1], ['int64', -(2 ** 63), 2 ** 63], ['uint32', 0, 2 ** 32 - 1], ['uint64', 0, 2 ** 64]]) {
  ajv.addFormat(name, { type: 'number', validate: (n) => Number.isInteger(n) && n >= lo && n <= hi });
}
ajv.addSchema(schema, 'dap');
const validators = new Map();

function definition(m) {
  const cap = (s) => (s || '').charAt(0).toUpperCase() + (s || '').slice(1);
  let name;
  let base;
  if (m.type === 'response') {
    name = m.success === false ? 'ErrorResponse' : `${cap(m.command)}Response`;
    base = 'Response';
  } else if (m.type === 'event') {
    name = `${cap(m.event)}Event`;
    base = 'Event';
  } else {
    name = base = 'ProtocolMessage';
  }
  return schema.definitions[name] ? name : base;
}

function violations(m) {
  const name = definition(m);
  if (!validators.has(name)) validators.set(name, ajv.getSchema(`dap#/definitions/${name}`));
  const validate = validators.get(name);
  return validate(m) ? null : `${name}: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(m)}`;
}

/** A DebugClient that checks every message it receives against the schema. */
function client() {
  const dc = new DebugClient(logprobe, 'dap', 'logprobe');
  dc.invalid = [];
  const dispatch = dc.dispatch.bind(dc);
  dc.dispatch = (body) => {
    const v = violations(JSON.parse(body));
    if (v) dc.invalid.push(v);
    dispatch(body);
  };
  return dc;
}

/** Ends the session; fails if any message it received was invalid. */
async function stop(dc) {
  await dc.stop();
  assert.deepStrictEqual(dc.invalid, [], 'messages invalid against the DAP schema');
}

function fixture(name) {
  const p = path.join(root, 'fixtures/bin', name);
  if (!fs.existsSync(p)) {
    cp.execFileSync('bash', [path.join(root, 'scripts/build-fixtures.sh')], { stdio: 'inherit' });
  }
  return p;
}

/** Records every output event body from now on. */
function recordOutput(dc) {
  const seen = [];
  dc.on('output', (e) => seen.push(e.body));
  return seen;
}

function text(seen, category) {
  return seen.filter((o) => o.category === category).map((o) => o.output).join('');
}

/** initialize + launch, waiting for `initialized`. */
async function launch(dc, backend, program, args = []) {
  const init = await dc.initializeRequest({ adapterID: 'logprobe', linesStartAt1: true, columnsStartAt1: true, pathFormat: 'path' });
  assert.strictEqual(init.body.supportsLogPoints, true);
  assert.strictEqual(init.body.supportsConfigurationDoneRequest, true);
  const initialized = dc.waitForEvent('initialized', TIMEOUT);
  await dc.launchRequest({ program: fixture(program), args, backend });
  await initialized;
}

async function seedLogpoint(dc, backend) {
  const seen = recordOutput(dc);
  const terminated = dc.waitForEvent('terminated', TIMEOUT);
  const exited = dc.waitForEvent('exited', TIMEOUT);
  await launch(dc, backend, 'seed');
  const set = await dc.setBreakpointsRequest({ source: { path: seedSource }, breakpoints: [{ line: 7, logMessage: 'x={x} y={y}' }] });
  assert.strictEqual(set.body.breakpoints[0].verified, false);
  const changed = dc.waitForEvent('breakpoint', TIMEOUT);
  await dc.configurationDoneRequest();
  const ev = await changed;
  assert.strictEqual(ev.body.breakpoint.verified, true);
  assert.strictEqual(ev.body.breakpoint.id, set.body.breakpoints[0].id);
  assert.strictEqual((await exited).body.exitCode, 0);
  await terminated;
  assert.strictEqual(text(seen, 'console'), 'x=99 y=9801\n');
  assert.strictEqual(text(seen, 'stdout'), 'x=99, y=9801, z=0\nz=9900\n');
  const hit = seen.find((o) => o.category === 'console');
  assert.strictEqual(hit.line, 7);
  assert.strictEqual(hit.source.path, seedSource);
  assert.strictEqual(hit.data.kind, 'line');
  // dc.stop() sends `disconnect`.
}

for (const backend of backends) {
  test(`${backend}: seed logpoint over stdio`, async () => {
    const dc = client();
    await dc.start();
    try {
      await seedLogpoint(dc, backend);
    } finally {
      await stop(dc);
    }
  });

  test(`${backend}: seed logpoint over TCP, two sessions in a row`, async () => {
    const server = cp.spawn(logprobe, ['dap', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      const port = await new Promise((resolve, reject) => {
        let buf = '';
        server.stderr.on('data', (d) => {
          buf += d;
          const m = /listening on 127\.0\.0\.1:(\d+)/.exec(buf);
          if (m) resolve(Number(m[1]));
        });
        server.on('exit', () => reject(new Error(`server exited: ${buf}`)));
      });
      for (let i = 0; i < 2; i++) {
        const dc = client();
        await dc.start(port);
        try {
          await seedLogpoint(dc, backend);
        } finally {
          await stop(dc);
        }
      }
    } finally {
      server.kill('SIGKILL');
    }
  });

  test(`${backend}: traceFunctions by regex, then removed while running`, async () => {
    const dc = client();
    await dc.start();
    try {
      const seen = recordOutput(dc);
      const terminated = dc.waitForEvent('terminated', TIMEOUT);
      await launch(dc, backend, 'attach', ['40']);
      const r = await dc.customRequest('traceFunctions', { functions: [{ regex: '^main\\.tick$', condition: 'i >= 3' }] });
      assert.strictEqual(r.body.functions[0].verified, true);
      assert.strictEqual(r.body.functions[0].functions[0].name, 'main.tick');
      await dc.configurationDoneRequest();
      // Wait for a few calls, then remove the trace.
      await new Promise((resolve) => {
        const check = () => (seen.filter((o) => o.category === 'console').length >= 4 ? resolve() : setTimeout(check, 20));
        check();
      });
      await dc.customRequest('traceFunctions', { functions: [] });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const count = seen.filter((o) => o.category === 'console').length;
      await terminated;
      assert.strictEqual(seen.filter((o) => o.category === 'console').length, count, 'trace still firing after removal');
      const lines = text(seen, 'console').split('\n').filter((l) => l);
      assert.match(lines[0], /^> goroutine\(1\): main\.tick\(3\)$/);
      assert.match(lines[1], /^>> goroutine\(1\): main\.tick => \(6\)$/);
      assert.strictEqual(text(seen, 'stdout'), 'ready\ndone sum=1560\n');
      // dc.stop() sends `disconnect`.
    } finally {
      await stop(dc);
    }
  });
}

test('noDebug runs the program without probes, its output forwarded', async () => {
  const dc = client();
  await dc.start();
  try {
    const seen = recordOutput(dc);
    const terminated = dc.waitForEvent('terminated', TIMEOUT);
    const exited = dc.waitForEvent('exited', TIMEOUT);
    await dc.initializeRequest({ adapterID: 'logprobe', linesStartAt1: true });
    const initialized = dc.waitForEvent('initialized', TIMEOUT);
    await dc.launchRequest({ program: fixture('attach'), args: ['3'], noDebug: true, trace: ['^main\\.tick$'] });
    await initialized;
    const set = await dc.setBreakpointsRequest({ source: { path: attachSource }, breakpoints: [{ line: 23, logMessage: 'i={i}' }] });
    assert.strictEqual(set.body.breakpoints[0].verified, false);
    assert.match(set.body.breakpoints[0].message, /noDebug/);
    await dc.configurationDoneRequest();
    assert.strictEqual((await exited).body.exitCode, 0);
    await terminated;
    assert.strictEqual(text(seen, 'stdout'), 'ready\ndone sum=6\n');
    assert.strictEqual(text(seen, 'console'), '');
  } finally {
    await stop(dc);
  }
});

test('bad requests get error responses and the session goes on', async () => {
  const dc = client();
  await dc.start();
  try {
    await assert.rejects(dc.launchRequest({ program: '/bin/true' }), /before 'initialize'/);
    await dc.initializeRequest();
    await assert.rejects(dc.launchRequest({ program: '/no/such/program' }), /no\/such\/program/);
    await assert.rejects(dc.customRequest('readMemory', { memoryReference: '0' }), /unsupported/);
    // Steps exist only for a snapshot of a hit (docs/protocol.md); the program never stops.
    await assert.rejects(dc.customRequest('stepIn', { threadId: 1 }), /without stopping/);
    await assert.rejects(dc.launchRequest({ program: 7 }), /invalid arguments/);
    const initialized = dc.waitForEvent('initialized', TIMEOUT);
    await dc.launchRequest({ program: fixture('attach'), args: ['1'] });
    await initialized;
    const r = await dc.setBreakpointsRequest({ source: { path: attachSource }, breakpoints: [{ line: 23 }] });
    assert.strictEqual(r.body.breakpoints[0].verified, false);
    assert.match(r.body.breakpoints[0].message, /without stopping/);
    const terminated = dc.waitForEvent('terminated', TIMEOUT);
    await dc.configurationDoneRequest();
    await terminated;
    // dc.stop() sends `disconnect`.
  } finally {
    await stop(dc);
  }
});

test('the schema check rejects what the DAP schema rejects', () => {
  const error = { seq: 1, type: 'response', request_seq: 1, success: false, command: 'launch', message: 'no' };
  assert.match(violations(error), /^ErrorResponse: /);
  assert.strictEqual(violations({ ...error, body: { error: { id: 5, format: 'no' } } }), null);
  assert.match(violations({ seq: 2, type: 'event', event: 'output', body: { category: 'console' } }), /^OutputEvent: /);
  assert.strictEqual(violations({ seq: 3, type: 'event', event: 'logprobe/hits', body: {} }), null);
});
