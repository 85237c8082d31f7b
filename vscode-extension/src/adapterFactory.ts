// Starts the adapter for each logprobe debug session.
//
// Resolves the binary (adapterPath.ts), warns when it lacks the privileges the
// configuration's backend needs (privileges.ts), starts it through the relaying
// proxy, and registers the session with the traces parked for it and the model
// its `logprobe/hits` events feed.

import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as vscode from 'vscode';
import { AdapterProxy } from './adapterProxy';
import { HITS_EVENT, HitsModel, parseHitsBody } from './hits';
import { resolveAdapterPath } from './adapterPath';
import { reportError, reportOutcome } from './messages';
import { grantHint, missingPrivileges, parseGetcap } from './privileges';
import { SessionRegistry } from './sessions';
import { TraceSession } from './traceSession';

function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Capabilities on the file, or undefined when getcap is missing or fails. */
function fileCapabilities(file: string): Set<string> | undefined {
  try {
    return parseGetcap(execFileSync('getcap', [file], { encoding: 'utf8', timeout: 5000 }));
  } catch {
    return undefined;
  }
}

/** A .vsix may lose the executable bit of the bundled binary; restore it. */
function ensureExecutable(file: string): void {
  try {
    fs.accessSync(file, fs.constants.X_OK);
  } catch {
    fs.chmodSync(file, 0o755);
  }
}

export function adapterCommand(extensionPath: string): string {
  const resolution = resolveAdapterPath({
    setting: vscode.workspace.getConfiguration('logprobe').get<string>('adapterPath'),
    extensionPath,
    platform: process.platform,
    arch: process.arch,
    pathEnv: process.env.PATH,
    home: os.homedir(),
    isFile,
  });
  if (!resolution.ok) {
    throw new Error(resolution.message);
  }
  if (resolution.origin === 'bundled') {
    ensureExecutable(resolution.path);
  }
  return resolution.path;
}

export class AdapterFactory implements vscode.DebugAdapterDescriptorFactory {
  constructor(
    private readonly extensionPath: string,
    private readonly registry: SessionRegistry,
    private readonly log: vscode.OutputChannel,
  ) {}

  createDebugAdapterDescriptor(session: vscode.DebugSession): vscode.DebugAdapterDescriptor {
    const command = adapterCommand(this.extensionPath);
    const config = session.configuration;
    const request = config.request === 'attach' ? 'attach' : 'launch';
    const backend = typeof config.backend === 'string' ? config.backend : undefined;
    const missing = missingPrivileges({
      uid: process.getuid?.() ?? 0,
      fileCaps: fileCapabilities(command),
      backend,
      request,
    });
    if (missing.length > 0) {
      void vscode.window.showWarningMessage(
        `logprobe: ${command} lacks ${missing.join(', ')}, which the ${backend ?? 'ebpf'} backend needs. ${grantHint(command)}`,
      );
    }

    this.log.appendLine(`starting ${command} dap for session "${session.name}"`);
    const pending = this.registry.takePending();
    let started = false;
    const proxy = new AdapterProxy(command, ['dap'], {
      log: (line) => this.log.appendLine(line),
      beforeInitialized: () => {
        started = true;
        if (traces.traceSet.size > 0) {
          traces.sync().then(reportOutcome, (e: unknown) => reportError('tracing failed', e));
        }
      },
      event: (message) => {
        if (message.event !== HITS_EVENT) {
          return false;
        }
        const body = parseHitsBody(message.body);
        if (body && hits.apply(body)) {
          this.registry.changed();
        }
        return true;
      },
      exited: (code, signal, tail) => {
        this.log.appendLine(`adapter exited (code ${code ?? 'none'}, signal ${signal ?? 'none'})`);
        if (!started && code !== 0) {
          const permission = tail.some((l) => /permission|not permitted|EPERM|EACCES/i.test(l));
          const detail = tail.filter((l) => l.trim() !== '').slice(-3).join(' | ');
          void vscode.window.showErrorMessage(
            `logprobe adapter failed to start: ${detail || 'no error output'}` +
              (permission ? `. ${grantHint(command)}` : ''),
          );
        }
      },
    });
    const traces = new TraceSession((cmd, args) => proxy.request(cmd, args));
    const hits = new HitsModel();
    pending.forEach((entry) => traces.traceSet.add(entry));
    this.registry.add({ session, proxy, traces, hits });
    return new vscode.DebugAdapterInlineImplementation(proxy);
  }
}
