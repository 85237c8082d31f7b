// Debug configuration checks and defaults.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  firstLaunchConfiguration,
  fitForTracer,
  resolveAfterSubstitution,
  resolveBeforeSubstitution,
} from '../src/config';

const launch = { type: 'logprobe', request: 'launch', name: 'l', program: '/w/seed' };

test('F5 without launch.json asks for launch.json', () => {
  assert.equal(resolveBeforeSubstitution({}).kind, 'openLaunchJson');
  assert.equal(resolveBeforeSubstitution(launch).kind, 'ok');
});

test('launch gets the workspace folder as cwd unless given', () => {
  const r = resolveAfterSubstitution(launch, '/w');
  assert.deepEqual(r, { kind: 'ok', config: { ...launch, cwd: '/w' } });
  const given = resolveAfterSubstitution({ ...launch, cwd: '/tmp' }, '/w');
  assert.equal(given.kind === 'ok' && given.config.cwd, '/tmp');
});

test('launch without program, or with bad field types, is refused with the field named', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...launch, program: '' }, /"program"/],
    [{ ...launch, args: 'a b' }, /"args"/],
    [{ ...launch, env: { A: 1 } }, /"env\.A"/],
    [{ ...launch, backend: 'kprobe' }, /"backend".*ebpf, ptrace, auto/],
    [{ ...launch, trace: 'main.foo' }, /"trace"/],
    [{ ...launch, maxDepth: -1 }, /"maxDepth"/],
    [{ ...launch, request: 'run' }, /"request"/],
  ];
  for (const [config, message] of cases) {
    const r = resolveAfterSubstitution(config, undefined);
    assert.equal(r.kind, 'error', JSON.stringify(config));
    assert.match(r.kind === 'error' ? r.message : '', message);
  }
});

test('launch builds a Go package instead of a program when given one', () => {
  const pkg = { type: 'logprobe', request: 'launch', name: 'p', package: './cmd/server' };
  assert.equal(resolveAfterSubstitution(pkg, '/w').kind, 'ok');
  const tests = { type: 'logprobe', request: 'launch', name: 't', test: true, args: ['-test.run', 'TestX'] };
  assert.equal(resolveAfterSubstitution(tests, '/w').kind, 'ok');
  assert.equal(resolveAfterSubstitution({ ...pkg, buildFlags: '-tags=x' }, '/w').kind, 'ok');
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...pkg, program: '/w/seed' }, /"program".*"package".*not both/],
    [{ ...pkg, package: '' }, /"package"/],
    [{ ...pkg, test: 'yes' }, /"test"/],
    [{ ...pkg, optimized: 1 }, /"optimized"/],
    [{ ...pkg, buildFlags: ['-tags=x'] }, /"buildFlags"/],
  ];
  for (const [config, message] of cases) {
    const r = resolveAfterSubstitution(config, undefined);
    assert.equal(r.kind, 'error', JSON.stringify(config));
    assert.match(r.kind === 'error' ? r.message : '', message);
  }
});

test('attach takes a pid as number or as the string a picker returns', () => {
  const base = { type: 'logprobe', request: 'attach', name: 'a' };
  const r = resolveAfterSubstitution({ ...base, pid: '4242' }, '/w');
  assert.equal(r.kind === 'ok' && r.config.pid, 4242);
  assert.equal(r.kind === 'ok' && r.config.cwd, undefined);
  assert.equal(resolveAfterSubstitution({ ...base, pid: 7 }, undefined).kind, 'ok');
  for (const pid of [undefined, 0, '', 'abc', 1.5]) {
    assert.equal(resolveAfterSubstitution({ ...base, pid }, undefined).kind, 'error', String(pid));
  }
});

test('the first logprobe launch configuration is chosen', () => {
  const configs = [
    { type: 'go', request: 'launch', name: 'go' },
    { type: 'logprobe', request: 'attach', name: 'attach', pid: 1 },
    { type: 'logprobe', request: 'launch', name: 'first', program: 'a' },
    { type: 'logprobe', request: 'launch', name: 'second', program: 'b' },
  ];
  assert.equal(firstLaunchConfiguration(configs)?.name, 'first');
  assert.equal(firstLaunchConfiguration(configs.slice(0, 2)), undefined);
  assert.equal(firstLaunchConfiguration(undefined), undefined);
});

test('backend "auto" leaves the choice to the adapter; ebpf and ptrace are passed on', () => {
  const auto = resolveAfterSubstitution({ ...launch, backend: 'auto' }, undefined);
  assert.equal(auto.kind === 'ok' && 'backend' in auto.config, false);
  const ebpf = resolveAfterSubstitution({ ...launch, backend: 'ebpf' }, undefined);
  assert.equal(ebpf.kind === 'ok' && ebpf.config.backend, 'ebpf');
});

test('console volume fields are checked', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...launch, consoleVolume: 'loud' }, /"consoleVolume".*all, sample, summary/],
    [{ ...launch, consoleLinesPerSecond: 0 }, /"consoleLinesPerSecond"/],
    [{ ...launch, hitsInterval: 1.5 }, /"hitsInterval"/],
  ];
  for (const [config, message] of cases) {
    const r = resolveAfterSubstitution(config, '/w');
    assert.equal(r.kind, 'error');
    assert.match(r.kind === 'error' ? r.message : '', message);
  }
  assert.equal(resolveAfterSubstitution({ ...launch, consoleVolume: 'summary', hitsInterval: 0 }, '/w').kind, 'ok');
});

test('a tracer session takes the console volume from the settings unless it chooses', () => {
  const settings = (values: Record<string, unknown>) => ({ get: <T>(key: string) => values[key] as T | undefined });
  const fitted = fitForTracer(launch, settings({ consoleVolume: 'summary', consoleLinesPerSecond: 3 }));
  assert.equal(fitted.noDebug, undefined, 'VS Code sends no logpoints to a noDebug session');
  assert.deepEqual(fitted, { ...launch, consoleVolume: 'summary', consoleLinesPerSecond: 3, hitsInterval: 250 });
  assert.equal(fitForTracer({ ...launch, hitsInterval: 0 }, settings({})).hitsInterval, 0, 'the configuration may turn them off');
  const own = fitForTracer({ ...launch, consoleVolume: 'all' }, settings({}));
  assert.equal(own.consoleVolume, 'all');
  assert.equal(own.consoleLinesPerSecond, 10);
  const bad = fitForTracer(launch, settings({ consoleVolume: 'loud', consoleLinesPerSecond: -2 }));
  assert.equal(bad.consoleVolume, 'sample', 'an unusable setting falls back to the default');
  assert.equal(bad.consoleLinesPerSecond, 10);
});
