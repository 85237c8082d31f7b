// How trace outcomes are reported to the user: one place for the wording.

import * as vscode from 'vscode';
import { ApplyOutcome, describeEntry } from './traceSet';

export function reportOutcome(outcome: ApplyOutcome): void {
  for (const { entry, message } of outcome.rejected) {
    void vscode.window.showWarningMessage(`logprobe cannot trace ${describeEntry(entry)}: ${message}`);
  }
  if (outcome.duplicates.length > 0) {
    void vscode.window.showInformationMessage('logprobe: that function is already traced.');
  }
  for (const { entry, functions } of outcome.added) {
    vscode.window.setStatusBarMessage(`logprobe: tracing ${describeEntry(entry, functions)}`, 5000);
  }
}

export function reportError(what: string, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  void vscode.window.showErrorMessage(`logprobe: ${what}: ${message}`);
}
