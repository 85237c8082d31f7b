// Checks and completes a logprobe debug configuration before a session starts.
//
// VS Code hands the configuration over twice: before variable substitution
// (where an empty configuration - F5 without launch.json - is recognised) and
// after it (where types are checked, a `pid` string from a command is turned into
// a number and defaults are filled in). Field names mirror the `launch` and
// `attach` arguments of `logprobe dap` (docs/protocol.md). Pure, unit-tested.

import { consoleVolumeArguments, CONSOLE_VOLUMES, isConsoleVolume, Settings } from './consoleVolume';

export const DEBUG_TYPE = 'logprobe';
export const BACKENDS = ['ebpf', 'ptrace', 'auto'] as const;

export type Configuration = Record<string, unknown>;

export type Resolution =
  | { kind: 'ok'; config: Configuration }
  | { kind: 'error'; message: string }
  /** No configuration at all: ask VS Code to open launch.json. */
  | { kind: 'openLaunchJson'; message: string };

/** First step: only recognises F5 with no launch.json. */
export function resolveBeforeSubstitution(config: Configuration): Resolution {
  if (config.type === undefined && config.request === undefined && config.name === undefined) {
    return {
      kind: 'openLaunchJson',
      message: 'logprobe needs a launch configuration naming the program to run: add one to launch.json.',
    };
  }
  return { kind: 'ok', config };
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

function optionalNonNegativeInt(config: Configuration, field: string): string | undefined {
  const value = config[field];
  if (value === undefined) {
    return undefined;
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    return `"${field}" must be a non-negative integer, got ${JSON.stringify(value)}.`;
  }
  return undefined;
}

/** Second step: checks every field the adapter reads and fills defaults. */
export function resolveAfterSubstitution(input: Configuration, workspaceFolder: string | undefined): Resolution {
  const config: Configuration = { ...input };
  const error = (message: string): Resolution => ({ kind: 'error', message });
  const request = config.request;
  if (request !== 'launch' && request !== 'attach') {
    return error(`"request" must be "launch" or "attach", got ${JSON.stringify(request)}.`);
  }

  if (request === 'launch') {
    // A Go package to build (`package`, `test`, `optimized`, `buildFlags`) instead of a program.
    for (const field of ['test', 'optimized']) {
      if (config[field] !== undefined && typeof config[field] !== 'boolean') {
        return error(`"${field}" must be true or false.`);
      }
    }
    const pkg = config.package;
    if (pkg !== undefined && (typeof pkg !== 'string' || pkg.trim() === '')) {
      return error('"package" must be a Go package: ".", "./cmd/x" or an import path.');
    }
    const builds = pkg !== undefined || config.test === true;
    if (config.buildFlags !== undefined && typeof config.buildFlags !== 'string') {
      return error('"buildFlags" must be a string of flags for `go build`, e.g. "-tags=integration".');
    }
    if (builds && config.program !== undefined) {
      return error('Give "program" (an executable) or "package" (a Go package to build), not both.');
    }
    if (!builds && (typeof config.program !== 'string' || config.program.trim() === '')) {
      return error(
        'A logprobe launch configuration needs "program": the path of the executable to run (or "package": a Go package to build).',
      );
    }
    if (config.args !== undefined && !isStringArray(config.args)) {
      return error('"args" must be a list of strings.');
    }
    if (config.cwd !== undefined && typeof config.cwd !== 'string') {
      return error('"cwd" must be a string.');
    }
    if (config.cwd === undefined && workspaceFolder !== undefined) {
      config.cwd = workspaceFolder;
    }
    const env = config.env;
    if (env !== undefined) {
      if (typeof env !== 'object' || env === null || Array.isArray(env)) {
        return error('"env" must be an object mapping names to strings.');
      }
      for (const [name, value] of Object.entries(env)) {
        if (typeof value !== 'string') {
          return error(`"env.${name}" must be a string.`);
        }
      }
    }
  } else {
    let pid = config.pid;
    if (typeof pid === 'string' && /^\s*\d+\s*$/.test(pid)) {
      pid = Number(pid);
    }
    if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) {
      return error(`A logprobe attach configuration needs "pid", a process id, got ${JSON.stringify(config.pid)}.`);
    }
    config.pid = pid;
  }

  if (config.backend !== undefined && !(BACKENDS as readonly unknown[]).includes(config.backend)) {
    return error(`"backend" must be one of ${BACKENDS.join(', ')}, got ${JSON.stringify(config.backend)}.`);
  }
  if (config.backend === 'auto') {
    delete config.backend; // "auto" is the adapter's own choice: say nothing
  }
  if (config.trace !== undefined && !isStringArray(config.trace)) {
    return error('"trace" must be a list of function-name regular expressions.');
  }
  for (const field of ['maxStringLen', 'maxArrayValues', 'maxDepth', 'hitsInterval']) {
    const message = optionalNonNegativeInt(config, field);
    if (message) {
      return error(message);
    }
  }
  if (config.consoleVolume !== undefined && !isConsoleVolume(config.consoleVolume)) {
    return error(
      `"consoleVolume" must be one of ${CONSOLE_VOLUMES.join(', ')}, got ${JSON.stringify(config.consoleVolume)}.`,
    );
  }
  const lines = config.consoleLinesPerSecond;
  if (lines !== undefined && (typeof lines !== 'number' || !Number.isInteger(lines) || lines <= 0)) {
    return error(`"consoleLinesPerSecond" must be a positive integer, got ${JSON.stringify(lines)}.`);
  }
  return { kind: 'ok', config };
}

/** Milliseconds between two `logprobe/hits` events the extension asks for. */
export const HITS_INTERVAL_MS = 250;

/**
 * Fits a checked configuration to a tracer: the console volume from the
 * settings where the configuration does not choose one, and the adapter's
 * `logprobe/hits` events, which it sends only when asked. (Not `noDebug`,
 * although nothing is ever stopped: VS Code sends no breakpoints, hence no
 * logpoints, to a noDebug session, and to the adapter it means "run without
 * probes".)
 */
export function fitForTracer(config: Configuration, settings: Settings): Configuration {
  const fitted: Configuration = { ...config };
  if (fitted.hitsInterval === undefined) {
    fitted.hitsInterval = HITS_INTERVAL_MS;
  }
  const volume = consoleVolumeArguments(settings);
  if (fitted.consoleVolume === undefined) {
    fitted.consoleVolume = volume.volume;
  }
  if (fitted.consoleLinesPerSecond === undefined) {
    fitted.consoleLinesPerSecond = volume.linesPerSecond;
  }
  return fitted;
}

/**
 * The first logprobe launch configuration of a launch.json `configurations`
 * list: what "Trace function" starts when no session runs.
 */
export function firstLaunchConfiguration(configurations: unknown): Configuration | undefined {
  if (!Array.isArray(configurations)) {
    return undefined;
  }
  for (const c of configurations) {
    if (typeof c === 'object' && c !== null) {
      const config = c as Configuration;
      if (config.type === DEBUG_TYPE && config.request === 'launch') {
        return config;
      }
    }
  }
  return undefined;
}
