// The "Trace" / "Stop tracing (N calls)" CodeLens above Go, C, C++ and Rust
// functions (which lens where: lenses.ts).
//
// Functions are found through the document symbols of the language's own
// extension when one is installed, else by scanning the text
// (functionScan.ts), so the lenses also appear in a bare editor such as
// code-server without the Go extension. Counts come from the adapter's
// events; lenses are refreshed at most once per REFRESH_MS so a hot trace
// does not keep the editor re-laying out its lines.

import * as vscode from 'vscode';
import { FoundFunction, scanFunctions } from './functionScan';
import { lensesFor, tracedCalls } from './lenses';
import { SessionRegistry } from './sessions';

export const LANGUAGES = ['go', 'c', 'cpp', 'rust'];
const REFRESH_MS = 1000;
const FUNCTION_KINDS = new Set([vscode.SymbolKind.Function, vscode.SymbolKind.Method, vscode.SymbolKind.Constructor]);

type Symbols = (vscode.DocumentSymbol | vscode.SymbolInformation)[] | undefined;

function fromSymbols(symbols: Symbols): FoundFunction[] {
  const found: FoundFunction[] = [];
  const walk = (list: (vscode.DocumentSymbol | vscode.SymbolInformation)[]): void => {
    for (const s of list) {
      if ('selectionRange' in s) {
        if (FUNCTION_KINDS.has(s.kind)) {
          found.push({ name: s.name, line: s.selectionRange.start.line, character: s.selectionRange.start.character });
        }
        walk(s.children);
      } else if (FUNCTION_KINDS.has(s.kind)) {
        found.push({ name: s.name, line: s.location.range.start.line, character: s.location.range.start.character });
      }
    }
  };
  walk(symbols ?? []);
  return found;
}

export class TraceCodeLens implements vscode.CodeLensProvider, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<void>();
  readonly onDidChangeCodeLenses = this.emitter.event;
  private readonly disposables: vscode.Disposable[] = [];
  private timer: NodeJS.Timeout | undefined;
  private cache = new Map<string, { version: number; functions: FoundFunction[] }>();

  constructor(private readonly registry: SessionRegistry) {
    this.disposables.push(
      this.emitter,
      registry.onDidChange(() => this.schedule()),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('logprobe.codeLens')) {
          this.emitter.fire();
        }
      }),
      vscode.workspace.onDidCloseTextDocument((d) => this.cache.delete(d.uri.toString())),
      vscode.languages.registerCodeLensProvider(
        LANGUAGES.map((language) => ({ language, scheme: 'file' })),
        this,
      ),
    );
  }

  private schedule(): void {
    if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.emitter.fire();
      }, REFRESH_MS);
    }
  }

  private async functions(document: vscode.TextDocument): Promise<FoundFunction[]> {
    const key = document.uri.toString();
    const cached = this.cache.get(key);
    if (cached && cached.version === document.version) {
      return cached.functions;
    }
    let functions: FoundFunction[] = [];
    try {
      functions = fromSymbols(
        await vscode.commands.executeCommand<Symbols>('vscode.executeDocumentSymbolProvider', document.uri),
      );
    } catch {
      // no symbol provider answered: scan below
    }
    if (functions.length === 0) {
      functions = scanFunctions(document.getText(), document.languageId);
    }
    this.cache.set(key, { version: document.version, functions });
    return functions;
  }

  async provideCodeLenses(document: vscode.TextDocument): Promise<vscode.CodeLens[]> {
    if (!vscode.workspace.getConfiguration('logprobe').get<boolean>('codeLens', true)) {
      return [];
    }
    const sessions = this.registry.all().map((s) => ({
      traces: s.hits.traces(),
      answered: s.traces.traceSet.list().flatMap((item) => item.functions ?? []),
    }));
    const path = document.uri.fsPath;
    return lensesFor(await this.functions(document), tracedCalls(sessions, path)).map((lens) => {
      const range = new vscode.Range(lens.line, lens.character, lens.line, lens.character);
      const args = [document.uri.toString(), lens.line, lens.character];
      return new vscode.CodeLens(range, {
        title: lens.title,
        tooltip: lens.action === 'trace' ? `Trace every call of ${lens.name}` : `Stop tracing ${lens.name}`,
        command: lens.action === 'trace' ? 'logprobe.traceAt' : 'logprobe.stopTracingAt',
        arguments: args,
      });
    });
  }

  dispose(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
    }
    for (const d of this.disposables) {
      d.dispose();
    }
    this.cache = new Map();
  }
}
