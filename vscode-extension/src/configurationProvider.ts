// Validates logprobe debug configurations as VS Code resolves them (config.ts
// holds the rules; this file only adapts them to the VS Code API).

import * as vscode from 'vscode';
import { fitForTracer, resolveAfterSubstitution, resolveBeforeSubstitution } from './config';

export class ConfigurationProvider implements vscode.DebugConfigurationProvider {
  resolveDebugConfiguration(
    _folder: vscode.WorkspaceFolder | undefined,
    config: vscode.DebugConfiguration,
  ): vscode.ProviderResult<vscode.DebugConfiguration> {
    const result = resolveBeforeSubstitution(config);
    if (result.kind === 'openLaunchJson') {
      void vscode.window.showInformationMessage(result.message);
      return null; // null: VS Code opens launch.json
    }
    return config;
  }

  resolveDebugConfigurationWithSubstitutedVariables(
    folder: vscode.WorkspaceFolder | undefined,
    config: vscode.DebugConfiguration,
  ): vscode.ProviderResult<vscode.DebugConfiguration> {
    const result = resolveAfterSubstitution(config, folder?.uri.fsPath);
    if (result.kind === 'ok') {
      return fitForTracer(result.config, vscode.workspace.getConfiguration('logprobe')) as vscode.DebugConfiguration;
    }
    void vscode.window.showErrorMessage(`logprobe: ${result.message}`);
    return undefined; // undefined: the session is not started
  }
}
