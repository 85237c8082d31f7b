// Entry point: registers the logprobe debugger, its configuration checks and
// the editor commands. Everything registered is disposed with the extension.

import * as vscode from 'vscode';
import { AdapterFactory } from './adapterFactory';
import { Commands } from './commands';
import { DEBUG_TYPE } from './config';
import { ConfigurationProvider } from './configurationProvider';
import { SessionRegistry } from './sessions';

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
  );
}

export function deactivate(): void {
  // Sessions end with VS Code; their adapters are disposed by VS Code.
}
