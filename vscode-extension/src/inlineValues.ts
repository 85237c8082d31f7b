// Puts the latest values and counts of every trace at the end of its lines in
// the visible editors (the texts come from inlineText.ts).
//
// VS Code's InlineValuesProvider is only consulted while a debugger is
// stopped, and logprobe never stops the program, so these are editor
// decorations. Updates are throttled: however fast the adapter's events
// come (it sends at most a few a second per session), the editors are
// redecorated at most once per UPDATE_MS, only the visible ones, and only
// when their text changed. Everything is cleared when the sessions end.

import * as vscode from 'vscode';
import { inlineTexts, SessionTraces } from './inlineText';
import { SessionRegistry } from './sessions';

/** The shortest time between two redecorations of the editors. */
const UPDATE_MS = 250;

export class InlineValues implements vscode.Disposable {
  private readonly decoration = vscode.window.createTextEditorDecorationType({
    after: {
      color: new vscode.ThemeColor('editor.inlineValuesForeground'),
      backgroundColor: new vscode.ThemeColor('editor.inlineValuesBackground'),
      margin: '0 0 0 2em',
      fontStyle: 'italic',
    },
    rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
  });
  private readonly disposables: vscode.Disposable[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** What each editor shows now, by editor, to skip identical updates. */
  private shown = new WeakMap<vscode.TextEditor, string>();

  constructor(private readonly registry: SessionRegistry) {
    this.disposables.push(
      registry.onDidChange(() => this.schedule()),
      vscode.window.onDidChangeVisibleTextEditors(() => this.schedule()),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('logprobe.inlineValues')) {
          this.schedule();
        }
      }),
    );
  }

  private schedule(): void {
    if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.update();
      }, UPDATE_MS);
    }
  }

  private update(): void {
    const enabled = vscode.workspace.getConfiguration('logprobe').get<boolean>('inlineValues', true);
    const sessions: SessionTraces[] = enabled
      ? this.registry.all().map((s) => ({ name: s.session.name, traces: s.hits.traces() }))
      : [];
    for (const editor of vscode.window.visibleTextEditors) {
      const texts = sessions.length > 0 ? inlineTexts(sessions, editor.document.uri.fsPath) : new Map<number, string>();
      const key = JSON.stringify([...texts]);
      if (this.shown.get(editor) === key) {
        continue;
      }
      this.shown.set(editor, key);
      const options: vscode.DecorationOptions[] = [];
      for (const [line, text] of texts) {
        if (line >= editor.document.lineCount) {
          continue;
        }
        const end = editor.document.lineAt(line).range.end;
        options.push({ range: new vscode.Range(end, end), renderOptions: { after: { contentText: text } } });
      }
      editor.setDecorations(this.decoration, options);
    }
  }

  dispose(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
    }
    for (const d of this.disposables) {
      d.dispose();
    }
    this.decoration.dispose();
    this.shown = new WeakMap();
  }
}
