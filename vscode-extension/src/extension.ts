// Entry point: registers the logprobe debugger, its configuration checks, the
// editor commands, and what shows the probes' figures: inline values, the
// Traces view, the CodeLens and the console volume setting. Everything
// registered is disposed with the extension.

import * as vscode from 'vscode';
import { AdapterFactory } from './adapterFactory';
import { Commands } from './commands';
import { DEBUG_TYPE } from './config';
import { ConfigurationProvider } from './configurationProvider';
import { SessionRegistry } from './sessions';
import { TraceCodeLens } from './codeLens';
import { InlineValues } from './inlineValues';
import { reportError } from './messages';
import { TracesView } from './tracesView';
import { consoleVolumeArguments } from './consoleVolume';

export function activate(context: vscode.ExtensionContext): void {
  const registry = new SessionRegistry();
  const log = vscode.window.createOutputChannel('logprobe');
  const commands = new Commands(registry);
  context.subscriptions.push(
    log,
    vscode.debug.registerDebugConfigurationProvider(DEBUG_TYPE, new ConfigurationProvider()),
    vscode.debug.registerDebugAdapterDescriptorFactory(
      DEBUG_TYPE,
      new AdapterFactory(context.extensionPath, registry, log),
    ),
    vscode.debug.onDidTerminateDebugSession((session) => registry.delete(session.id)),
    vscode.commands.registerCommand('logprobe.traceFunction', () =>
      commands.traceFunction(vscode.window.activeTextEditor),
    ),
    vscode.commands.registerCommand('logprobe.stopTracingFunction', () =>
      commands.stopTracing(vscode.window.activeTextEditor),
    ),
    vscode.commands.registerCommand('logprobe.traceFunctionsMatching', () => commands.traceMatching()),
    vscode.commands.registerCommand('logprobe.pickProcess', () => commands.pickProcess()),
    vscode.commands.registerCommand('logprobe.traceAt', (uri: string, line: number, character: number) =>
      commands.traceAt(vscode.Uri.parse(uri), { line, character }),
    ),
    vscode.commands.registerCommand('logprobe.stopTracingAt', (uri: string, line: number) =>
      commands.stopTracingAt(vscode.Uri.parse(uri), line),
    ),
    new InlineValues(registry),
    new TracesView(registry),
    new TraceCodeLens(registry),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('logprobe.consoleVolume') || e.affectsConfiguration('logprobe.consoleLinesPerSecond')) {
        const args = consoleVolumeArguments(vscode.workspace.getConfiguration('logprobe'));
        for (const s of registry.all()) {
          s.proxy.request('setConsoleVolume', args).catch((err: unknown) => reportError('changing the console volume failed', err));
        }
      }
    }),
  );
}

export function deactivate(): void {
  // Sessions end with VS Code; their adapters are disposed by VS Code.
}
