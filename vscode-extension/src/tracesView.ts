// The Traces view in the Run and Debug side bar: every trace and logpoint of
// the running logprobe sessions with its count, rate and call durations, the
// hits it lost (a full eBPF ring buffer) or a rate limit left out, and each
// session's total lost, updated from
// the adapter's `logprobe/hits` events (at most every REFRESH_MS). Inline
// actions pause, resume and remove a trace;
// selecting one opens its source and shows its latest hit in the Variables
// view (the adapter's read-only snapshot thread). Sessions get a level of
// their own only when more than one runs.

import * as vscode from 'vscode';
import {
  describeDropped,
  describeFigures,
  formatCount,
  formatDurations,
  formatRate,
  formatValues,
  noun,
} from './format';
import { FunctionFigures, TraceFigures } from './hits';
import { reportError } from './messages';
import { LogprobeSession, SessionRegistry } from './sessions';
import { hasHit, removalPlan, setTraceState, snapshotArguments } from './traceControl';

export const TRACES_VIEW = 'logprobe.traces';
/**
 * The shortest time between two redraws of the view: once a second, so a
 * row is not redrawn under the pointer while it is being clicked (the
 * editor's inline values, the thing to watch, update four times as often).
 */
const REFRESH_MS = 1000;

type Node =
  | { kind: 'session'; sessionId: string }
  | { kind: 'trace'; sessionId: string; traceId: string }
  | { kind: 'function'; sessionId: string; traceId: string; name: string };

function location(path: string | undefined, line: number | undefined): vscode.Location | undefined {
  return path === undefined || line === undefined || line < 1
    ? undefined
    : new vscode.Location(vscode.Uri.file(path), new vscode.Position(line - 1, 0));
}

function tooltip(trace: TraceFigures, f?: FunctionFigures): vscode.MarkdownString {
  const md = new vscode.MarkdownString();
  const hits = f?.hits ?? trace.hits;
  md.appendMarkdown(`**${f?.name ?? trace.label}** — ${trace.state}\n\n`);
  md.appendMarkdown(`${formatCount(hits)} ${noun(trace.kind, hits)}, ${formatRate(f?.rate ?? trace.rate)}`);
  if (!f) {
    md.appendMarkdown(`, ${formatCount(trace.shown)} shown in the Debug Console`);
  }
  md.appendMarkdown('\n\n');
  const fn = f ?? (trace.functions.length === 1 ? trace.functions[0] : undefined);
  if (fn?.durations && fn.durations.count > 0) {
    md.appendMarkdown(`durations of ${formatCount(fn.durations.count)} calls: ${formatDurations(fn.durations)}\n\n`);
  }
  const code = (text: string): void => {
    md.appendCodeblock(text, 'text');
  };
  if (fn?.call) {
    code(`latest call: (${formatValues(fn.call)})`);
  }
  if (fn?.return) {
    code(`latest return: (${formatValues(fn.return)})`);
  }
  if (trace.latest) {
    code(`latest: ${trace.latest.message ?? formatValues(trace.latest)}`);
  }
  return md;
}

export class TracesView implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  private readonly disposables: vscode.Disposable[] = [];
  private timer: NodeJS.Timeout | undefined;
  private view: vscode.TreeView<Node> | undefined;

  constructor(private readonly registry: SessionRegistry) {
    this.disposables.push(
      this.emitter,
      registry.onDidChange(() => this.schedule()),
      (this.view = vscode.window.createTreeView(TRACES_VIEW, { treeDataProvider: this })),
      vscode.commands.registerCommand('logprobe.traces.select', (node: Node) => this.select(node)),
      vscode.commands.registerCommand('logprobe.traces.pause', (node: Node) => this.setState(node, 'paused')),
      vscode.commands.registerCommand('logprobe.traces.resume', (node: Node) => this.setState(node, 'active')),
      vscode.commands.registerCommand('logprobe.traces.remove', (node: Node) => this.remove(node)),
    );
  }

  private schedule(): void {
    if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void vscode.commands.executeCommand('setContext', 'logprobe.active', this.registry.size > 0);
        if (this.view) {
          // Lost hits are counted per session: say so above the list.
          const dropped = this.registry
            .all()
            .map((s) => describeDropped(s.hits.dropped) && `${s.session.name}: ${describeDropped(s.hits.dropped)}`)
            .filter((m) => m !== '');
          this.view.message = dropped.length > 0 ? dropped.join('; ') : undefined;
        }
        this.emitter.fire(undefined);
      }, REFRESH_MS);
    }
  }

  private find(node: Node): { session: LogprobeSession; trace?: TraceFigures } | undefined {
    const session = this.registry.get(node.sessionId);
    if (!session) {
      return undefined;
    }
    return node.kind === 'session' ? { session } : { session, trace: session.hits.get(node.traceId) };
  }

  getChildren(node?: Node): Node[] {
    if (!node) {
      const sessions = this.registry.all();
      if (sessions.length === 1 && sessions[0]) {
        return this.traceNodes(sessions[0]);
      }
      return sessions.map((s) => ({ kind: 'session', sessionId: s.session.id }));
    }
    const found = this.find(node);
    if (!found) {
      return [];
    }
    if (node.kind === 'session') {
      return this.traceNodes(found.session);
    }
    if (node.kind === 'trace' && found.trace && found.trace.functions.length > 1) {
      return found.trace.functions.map((f) => ({ kind: 'function', sessionId: node.sessionId, traceId: node.traceId, name: f.name }));
    }
    return [];
  }

  private traceNodes(session: LogprobeSession): Node[] {
    return session.hits.traces().map((t) => ({ kind: 'trace', sessionId: session.session.id, traceId: t.id }));
  }

  getTreeItem(node: Node): vscode.TreeItem {
    const found = this.find(node);
    if (!found) {
      return new vscode.TreeItem('(ended)');
    }
    if (node.kind === 'session') {
      const item = new vscode.TreeItem(found.session.session.name, vscode.TreeItemCollapsibleState.Expanded);
      item.id = node.sessionId;
      const dropped = describeDropped(found.session.hits.dropped);
      item.description = `${found.session.hits.size} traced` + (dropped ? ` · ${dropped}` : '');
      item.iconPath = new vscode.ThemeIcon('debug-alt');
      return item;
    }
    const trace = found.trace;
    if (!trace) {
      return new vscode.TreeItem('(removed)');
    }
    if (node.kind === 'function') {
      const f = trace.functions.find((x) => x.name === node.name);
      const item = new vscode.TreeItem(node.name, vscode.TreeItemCollapsibleState.None);
      item.id = `${node.sessionId}/${node.traceId}/${node.name}`;
      if (f) {
        const timing = f.durations && f.durations.count > 0 ? ` · ${formatDurations(f.durations)}` : '';
        item.description = `${formatCount(f.hits)} ${noun('trace', f.hits)} · ${formatRate(f.rate)}${timing}`;
        item.tooltip = tooltip(trace, f);
      }
      item.iconPath = new vscode.ThemeIcon('symbol-function');
      item.command = { command: 'logprobe.traces.select', title: 'Show', arguments: [node] };
      return item;
    }
    const item = new vscode.TreeItem(
      trace.label,
      trace.functions.length > 1 ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None,
    );
    item.id = `${node.sessionId}/${node.traceId}`;
    item.description = describeFigures(trace);
    item.tooltip = tooltip(trace);
    item.contextValue = `logprobe.${trace.kind}.${trace.state}`;
    item.iconPath = new vscode.ThemeIcon(
      trace.state === 'paused' ? 'debug-pause' : trace.kind === 'logpoint' ? 'debug-breakpoint-log' : 'pulse',
    );
    item.command = { command: 'logprobe.traces.select', title: 'Show', arguments: [node] };
    return item;
  }

  /** Opens the trace's source and shows its latest hit in the Variables view. */
  private async select(node: Node): Promise<void> {
    const found = this.find(node);
    const trace = found?.trace;
    if (!found || !trace) {
      return;
    }
    const f = node.kind === 'function' ? trace.functions.find((x) => x.name === node.name) : undefined;
    const first = trace.functions[0];
    const where =
      location(f?.source?.path, f?.line) ??
      location(trace.source?.path, trace.line) ??
      location(first?.source?.path, first?.line);
    if (where) {
      await vscode.window.showTextDocument(where.uri, {
        selection: where.range,
        preserveFocus: true,
        preview: true,
      });
    }
    if (hasHit(trace)) {
      await found.session.proxy
        .request('snapshot', snapshotArguments(trace, f?.name))
        .catch((e: unknown) => reportError('showing the latest hit failed', e));
    }
  }

  private async setState(node: Node, state: 'active' | 'paused'): Promise<void> {
    const found = this.find(node);
    if (!found?.trace) {
      return;
    }
    const { session, trace } = found;
    try {
      const now = await setTraceState((c, a) => session.proxy.request(c, a), trace.id, state);
      if (now !== 'removed') {
        session.hits.setState(trace.id, now);
      }
      this.registry.changed();
    } catch (e) {
      reportError(state === 'paused' ? 'pausing failed' : 'resuming failed', e);
    }
  }

  private async remove(node: Node): Promise<void> {
    const found = this.find(node);
    if (!found?.trace) {
      return;
    }
    const { session, trace } = found;
    const plan = removalPlan(trace, session.traces.traceSet);
    try {
      if (plan.kind === 'entry') {
        await session.traces.remove(plan.entry);
        return;
      }
      if (plan.kind === 'breakpoint' && (await removeBreakpoint(session, plan.path, plan.line, plan.breakpointId))) {
        return;
      }
      await setTraceState((c, a) => session.proxy.request(c, a), trace.id, 'removed');
    } catch (e) {
      reportError('removing failed', e);
    }
  }

  dispose(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
    }
    for (const d of this.disposables) {
      d.dispose();
    }
  }
}

/**
 * Removes the VS Code logpoint at a 1-based line of `path` (the one the
 * adapter knows by `breakpointId` when VS Code can tell); false if none is there.
 */
async function removeBreakpoint(
  session: LogprobeSession,
  path: string,
  line: number,
  breakpointId: number | undefined,
): Promise<boolean> {
  const candidates = vscode.debug.breakpoints.filter(
    (bp): bp is vscode.SourceBreakpoint =>
      bp instanceof vscode.SourceBreakpoint &&
      bp.location.uri.fsPath === path &&
      bp.location.range.start.line === line - 1,
  );
  let chosen = candidates;
  if (breakpointId !== undefined && candidates.length > 1) {
    const ids = await Promise.all(candidates.map((bp) => session.session.getDebugProtocolBreakpoint(bp)));
    chosen = candidates.filter((_, i) => protocolId(ids[i]) === breakpointId);
  }
  if (chosen.length === 0) {
    return false;
  }
  vscode.debug.removeBreakpoints(chosen);
  return true;
}

/** The DAP id of a breakpoint as the adapter reported it. */
function protocolId(bp: unknown): number | undefined {
  const id = typeof bp === 'object' && bp !== null ? (bp as { id?: unknown }).id : undefined;
  return typeof id === 'number' ? id : undefined;
}
