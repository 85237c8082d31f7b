// The editor commands: Trace function, Stop tracing function, Trace functions
// matching…, and the process picker used by attach configurations.
//
// Commands act on the current logprobe session (sessions.ts); the entry-set
// rules live in traceSet.ts and traceSession.ts.

import * as vscode from 'vscode';
import { DEBUG_TYPE, firstLaunchConfiguration } from './config';
import { reportError, reportOutcome } from './messages';
import { listProcesses } from './processes';
import { LogprobeSession, SessionRegistry } from './sessions';
import { functionAt } from './hits';
import { setTraceState } from './traceControl';
import { describeEntry, exactNameRegex, TraceEntry, TracedFunction } from './traceSet';

export class Commands {
  constructor(private readonly registry: SessionRegistry) {}

  private current(): LogprobeSession | undefined {
    return this.registry.current(vscode.debug.activeDebugSession);
  }

  /** Traces the function around the cursor, starting a session if none runs. */
  async traceFunction(editor: vscode.TextEditor | undefined): Promise<void> {
    if (!editor) {
      void vscode.window.showInformationMessage('logprobe: place the cursor inside a function first.');
      return;
    }
    await this.traceAt(editor.document.uri, editor.selection.active);
  }

  /** Traces the function around a position (the CodeLens "Trace"), starting a session if none runs. */
  async traceAt(uri: vscode.Uri, position: { line: number; character: number }): Promise<void> {
    const entry: TraceEntry = {
      position: {
        textDocument: { uri: uri.toString() },
        position: { line: position.line, character: position.character },
      },
    };
    const current = this.current();
    if (current) {
      await current.traces.add(entry).then(reportOutcome, (e: unknown) => reportError('tracing failed', e));
      return;
    }
    await this.startSession(uri, [entry]);
  }

  /**
   * Stops tracing the function declared at a 0-based line (the CodeLens
   * "Stop tracing"), in every session: entries this window sent are removed
   * from their set, a regex of the launch configuration through the adapter.
   */
  async stopTracingAt(uri: vscode.Uri, line: number): Promise<void> {
    const path = uri.fsPath;
    for (const current of this.registry.all()) {
      const entries = current.traces.traceSet.entriesDeclaredAt(path, line);
      try {
        for (const entry of entries) {
          await current.traces.remove(entry).then(reportOutcome);
        }
        if (entries.length > 0) {
          continue;
        }
        for (const trace of current.hits.traces()) {
          if (trace.kind === 'trace' && functionAt(trace, path, line + 1)) {
            await setTraceState((c, a) => current.proxy.request(c, a), trace.id, 'removed');
          }
        }
      } catch (e) {
        reportError('untracing failed', e);
      }
    }
  }

  /** Starts the workspace's first logprobe launch configuration with `entries` traced from the start. */
  private async startSession(uri: vscode.Uri, entries: TraceEntry[]): Promise<void> {
    const folder = vscode.workspace.getWorkspaceFolder(uri) ?? vscode.workspace.workspaceFolders?.[0];
    const launch = vscode.workspace.getConfiguration('launch', folder?.uri);
    const config = firstLaunchConfiguration(launch.get<unknown[]>('configurations'));
    if (!config) {
      const create = 'Create launch configuration';
      const choice = await vscode.window.showInformationMessage(
        'logprobe: no logprobe launch configuration in this workspace to start.',
        create,
      );
      if (choice === create && folder) {
        await this.createLaunchConfiguration(folder);
      }
      return;
    }
    this.registry.setPending(entries);
    const started = await vscode.debug.startDebugging(folder, config as vscode.DebugConfiguration);
    if (!started) {
      this.registry.takePending();
    }
  }

  /** Adds a logprobe launch configuration to the folder's launch.json and opens it. */
  private async createLaunchConfiguration(folder: vscode.WorkspaceFolder): Promise<void> {
    const launch = vscode.workspace.getConfiguration('launch', folder.uri);
    const existing = launch.get<unknown[]>('configurations') ?? [];
    const added = {
      type: DEBUG_TYPE,
      request: 'launch',
      name: 'logprobe: launch',
      program: `\${workspaceFolder}/${folder.name}`,
      args: [],
    };
    await launch.update('configurations', [...existing, added], vscode.ConfigurationTarget.WorkspaceFolder);
    const file = vscode.Uri.joinPath(folder.uri, '.vscode', 'launch.json');
    await vscode.window.showTextDocument(file);
    void vscode.window.showInformationMessage(
      'logprobe: check "program" (the executable to trace), then run Trace function again.',
    );
  }

  /** Stops tracing the function around the cursor, or one picked from the traced list. */
  async stopTracing(editor: vscode.TextEditor | undefined): Promise<void> {
    const current = this.current();
    if (!current || current.traces.traceSet.size === 0) {
      void vscode.window.showInformationMessage('logprobe: no function is traced.');
      return;
    }
    let entry = editor
      ? current.traces.traceSet.entryAt(editor.document.uri.fsPath, editor.selection.active.line)
      : undefined;
    if (!entry) {
      const items = current.traces.traceSet.list().map((item) => ({
        label: describeEntry(item.entry, item.functions),
        entry: item.entry,
      }));
      entry = (await vscode.window.showQuickPick(items, { placeHolder: 'Stop tracing…' }))?.entry;
    }
    if (entry) {
      await current.traces.remove(entry).then(reportOutcome, (e: unknown) => reportError('untracing failed', e));
    }
  }

  /** A picker filled by the adapter's `functions` request; picks are traced by exact name. */
  async traceMatching(): Promise<void> {
    const current = this.current();
    if (!current) {
      void vscode.window.showInformationMessage(
        'logprobe: start a logprobe session first (Trace function starts one).',
      );
      return;
    }
    type Item = vscode.QuickPickItem & { regex: string };
    const pick = vscode.window.createQuickPick<Item>();
    pick.canSelectMany = true;
    pick.placeholder = 'Filter functions; select the ones to trace (Enter on none traces the text as a regex)';
    let generation = 0;
    let timer: NodeJS.Timeout | undefined;
    const load = (filter: string): void => {
      const mine = ++generation;
      pick.busy = true;
      current.proxy.request('functions', filter === '' ? {} : { filter }).then(
        (body) => {
          if (mine !== generation) {
            return;
          }
          const functions = ((body as { functions?: TracedFunction[] } | undefined)?.functions ?? []).slice(0, 500);
          pick.items = functions.map((f) => ({
            label: f.name,
            description: f.source.path ? `${vscode.workspace.asRelativePath(f.source.path)}:${f.line}` : undefined,
            regex: exactNameRegex(f.name),
          }));
          pick.busy = false;
        },
        (e: unknown) => {
          pick.busy = false;
          reportError('listing functions failed', e);
        },
      );
    };
    const chosen = new Promise<TraceEntry[]>((resolve) => {
      pick.onDidChangeValue((value) => {
        if (timer) {
          clearTimeout(timer);
        }
        timer = setTimeout(() => load(value), 200);
      });
      pick.onDidAccept(() => {
        const picked = pick.selectedItems.map((item) => ({ regex: item.regex }));
        resolve(picked.length > 0 ? picked : pick.value !== '' ? [{ regex: pick.value }] : []);
        pick.hide();
      });
      pick.onDidHide(() => resolve([]));
    });
    pick.show();
    load('');
    const entries = await chosen;
    if (timer) {
      clearTimeout(timer);
    }
    pick.dispose();
    if (entries.length > 0) {
      await current.traces.add(...entries).then(reportOutcome, (e: unknown) => reportError('tracing failed', e));
    }
  }

  /** `${command:logprobe.pickProcess}` in attach configurations: the pid as a string. */
  async pickProcess(): Promise<string | undefined> {
    const items = listProcesses().map((p) => ({ label: String(p.pid), description: p.command }));
    const picked = await vscode.window.showQuickPick(items, {
      placeHolder: 'Process to attach logprobe to',
      matchOnDescription: true,
    });
    return picked?.label;
  }
}
