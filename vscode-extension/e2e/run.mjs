// Drives a real VS Code (code-server) in headless Chromium through the
// logprobe extension, as a person would:
//   1. open main.go of the seed fixture, right-click inside `foo`, choose
//      "Trace function" (no session runs, so the extension starts the
//      workspace's launch configuration) and wait for the Debug Console to show
//      `> goroutine(1): main.foo(99, 9801)` with a link to main.go;
//   2. add a logpoint `x={x} y={y}` on the `z = x + y` line with the editor's
//      "Add Logpoint..." action, start the configuration again, and wait for
//      `x=99 y=9801`;
//   3. start the "ticker" configuration (calls tick() every 50 ms), right-click
//      inside tick -> "Trace function" and see `main.tick(` calls arrive;
//      right-click -> "Stop tracing function" and see none for two seconds;
//      "Trace functions matching…", pick main.tick, and see them again;
//   4. while it runs: the Traces view
//      lists main.tick with its count rising; the editor shows its latest
//      argument and count at the end of `func tick`, and a "Stop tracing (N
//      calls)" CodeLens above it; the console volume's "not shown" line
//      appears (20 calls a second, 10 shown);
//   5. selecting the trace in the Traces view shows its latest hit in the
//      Variables view (the snapshot thread); Step Over moves it to the
//      newest hit, Continue closes it; the toolbar's Pause shows it too;
//   6. the trace's Remove action takes it out of the view, the calls stop
//      and the CodeLens says "Trace" again; clicking that lens traces it
//      again.
//   7. start the "rust ticker" configuration (a Rust program calling tick()
//      every 50 ms), right-click inside its `fn tick` -> "Trace function"
//      and see `ticker::tick(N, Point { x: …, y: … }, "tick")` arrive, the
//      values in Rust's notation, and the trace in the Traces view.
// A screenshot of each result is saved. Started by scripts/test-vscode-e2e.sh,
// which provides the environment variables read below; fails with a
// screenshot named *-failure.png and a non-zero exit on the first step that
// does not happen.
import { chromium } from 'playwright-core';

const url = must('CODE_URL');
const shots = must('SCREENSHOT_DIR');
const failureShot = must('FAILURE_SHOT');
const TIMEOUT = 60_000;

function must(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`e2e: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

function step(text) {
  console.log(`e2e: ${text}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
page.setDefaultTimeout(TIMEOUT);
let failed = false;
try {
  step(`opening ${url}`);
  await page.goto(url);
  await page.locator('.monaco-workbench').waitFor();

  step('opening main.go');
  await runCommand('Go to File', 'workbench.action.quickOpen', 'main.go');
  const editor = page.locator('.editor-instance .monaco-editor').first();
  const bodyLine = editor.locator('.view-line', { hasText: 'z = x + y' });
  await bodyLine.waitFor();

  step('right-click inside foo, "Trace function"');
  await bodyLine.click();
  await bodyLine.click({ button: 'right' });
  await clickMenuItem('Trace function');

  const traceLine = '> goroutine(1): main.foo(99, 9801)';
  step(`waiting for "${traceLine}" in the Debug Console`);
  const repl = page.locator('.repl');
  const traceRow = repl.locator('.monaco-list-row', { hasText: traceLine });
  await traceRow.first().waitFor();
  const link = traceRow.first().locator('.source');
  await link.waitFor();
  const linkText = (await link.textContent()) ?? '';
  if (!/main\.go:5\b/.test(linkText)) {
    throw new Error(`the trace line links to "${linkText}", expected main.go:5`);
  }
  await waitForSessionEnd();
  await page.screenshot({ path: `${shots}/vscode-trace-function.png` });

  step('adding the logpoint x={x} y={y} on the z = x + y line');
  await bodyLine.click();
  await page.keyboard.press('Home'); // a line logpoint, not one at the click's column
  await runCommand('Debug: Add Logpoint...', 'editor.debug.action.addLogPoint');
  const widget = page.locator('.breakpoint-widget');
  await widget.waitFor();
  await widget.locator('.inputContainer .monaco-editor').click();
  await page.keyboard.type('x={x} y={y}');
  await page.keyboard.press('Enter');
  await widget.waitFor({ state: 'hidden' });

  step('starting the session again (F5)');
  await editor.click();
  await page.keyboard.press('F5');
  const logLine = 'x=99 y=9801';
  step(`waiting for "${logLine}" in the Debug Console`);
  await repl.locator('.monaco-list-row', { hasText: logLine }).first().waitFor();
  await waitForSessionEnd();
  await page.screenshot({ path: `${shots}/vscode-logpoint.png` });

  step('starting the ticker configuration');
  await runCommand('Go to File', 'workbench.action.quickOpen', 'ticker/main.go', 'ticker');
  const tickLine = editor.locator('.view-line', { hasText: 'func tick(i int) int' });
  await tickLine.waitFor();
  await page.keyboard.press('F1');
  await page.locator('.quick-input-widget input').fill('debug ticker');
  await page.locator('.quick-input-list .monaco-list-row', { hasText: 'ticker' }).first().waitFor();
  await page.keyboard.press('Enter');
  await repl.locator('.monaco-list-row', { hasText: 'ready' }).first().waitFor();

  step('right-click inside tick, "Trace function", while it runs');
  await tickLine.click();
  await tickLine.click({ button: 'right' });
  await clickMenuItem('Trace function');
  const tickRows = repl.locator('.monaco-list-row', { hasText: /> goroutine\(1\): main\.tick\(\d+\)/ });
  await tickRows.first().waitFor();

  step('right-click inside tick, "Stop tracing function"');
  await tickLine.click();
  await tickLine.click({ button: 'right' });
  await clickMenuItem('Stop tracing function');
  await page.waitForTimeout(500); // lines already in flight
  await runCommand('Clear Console', 'workbench.debug.panel.action.clearReplAction');
  await page.waitForTimeout(2000); // 40 calls would have been traced
  if ((await tickRows.count()) > 0) {
    throw new Error('main.tick is still traced after "Stop tracing function"');
  }

  step('"Trace functions matching…" tick, pick main.tick');
  await runCommand('logprobe: Trace functions matching…', 'logprobe.traceFunctionsMatching');
  await page.locator('.quick-input-widget input').fill('tick');
  const item = page.locator('.quick-input-list .monaco-list-row', { hasText: 'main.tick' }).first();
  await item.waitFor();
  await item.click(); // toggles its check box: the picker selects many
  await page.locator('.quick-input-widget', { hasText: '1 Selected' }).waitFor();
  await page.keyboard.press('Enter');
  await tickRows.first().waitFor();
  await page.screenshot({ path: `${shots}/vscode-live-trace.png` });

  step('the console volume says how many calls it left out');
  await repl.locator('.monaco-list-row', { hasText: /more calls in the last second not shown/ }).first().waitFor();

  step('the Traces view lists main.tick with its count rising');
  await runCommand('View: Show Run and Debug', 'workbench.view.debug');
  const traces = page.locator('.pane', { has: page.locator('.pane-header', { hasText: /^Traces/ }) });
  await traces.waitFor();
  if ((await traces.locator('.pane-header').getAttribute('aria-expanded')) === 'false') {
    await traces.locator('.pane-header').click();
  }
  const tracesRow = traces.locator('.monaco-list-row', { hasText: 'main.tick' }).first();
  await tracesRow.waitFor();
  const first = await callCount(tracesRow);
  await page.waitForTimeout(1500); // 30 calls at 20 a second
  const second = await callCount(tracesRow);
  if (!(second > first)) {
    throw new Error(`the Traces view's count did not rise: ${first} then ${second}`);
  }

  step('the editor shows the latest argument and the count of tick, and a "Stop tracing" CodeLens');
  await expectPoll(async () => /\(i=\d+\) · [\d,]+ calls/.test(await inlineText(tickLine)), 'an inline value after func tick');
  const stopLens = editor.locator('.codelens-decoration a', { hasText: /^Stop tracing \([\d,]+ calls\)$/ });
  await stopLens.first().waitFor();
  // Room for the Traces view in the picture: the views a tracer leaves empty, folded.
  for (const pane of ['Variables', 'Watch', 'Breakpoints']) {
    await setExpanded(pane, false);
  }
  await page.waitForTimeout(500); // the folding's animation
  await page.screenshot({ path: `${shots}/vscode-traces-view.png` });
  await setExpanded('Variables', true);

  step('selecting the trace shows its latest hit in the Variables view');
  const variables = page.locator('.pane', { has: page.locator('.pane-header', { hasText: /^Variables/ }) });
  const argument = variables.locator('.monaco-list-row', { hasText: /^i\s*[:=]\s*\d+/ }).first();
  // The view redraws its rows a few times a second with the counts; a click
  // that lands while a row is replaced selects nothing, so it is repeated.
  for (let attempt = 1; ; attempt++) {
    await tracesRow.click();
    try {
      await argument.waitFor({ timeout: 5000 });
      break;
    } catch (e) {
      if (attempt === 3) {
        throw e;
      }
    }
  }
  const callStack = page.locator('.pane', { has: page.locator('.pane-header', { hasText: /^Call Stack/ }) });
  await callStack.locator('.monaco-list-row', { hasText: 'latest hit (snapshot)' }).first().waitFor();
  await page.screenshot({ path: `${shots}/vscode-latest-hit.png` });

  step('Step Over moves the snapshot to the newest hit; Continue closes it');
  const before = await argumentValue(argument);
  await page.waitForTimeout(300); // a few more calls
  await toolbarAction('debug-step-over').click();
  await expectPoll(async () => (await argumentValue(argument)) > before, 'a newer hit after Step Over');
  await toolbarAction('debug-continue').click();
  await argument.waitFor({ state: 'hidden' });

  step('Pause stops nothing: it shows the latest hit too');
  await toolbarAction('debug-pause').click();
  await argument.waitFor();
  await toolbarAction('debug-continue').click();
  await argument.waitFor({ state: 'hidden' });

  step('Remove in the Traces view stops the trace; the CodeLens says "Trace" again');
  await tracesRow.hover();
  await tracesRow.locator('.action-label[aria-label^="Remove"]').click();
  await tracesRow.waitFor({ state: 'hidden' });
  await page.waitForTimeout(500); // lines already in flight
  await runCommand('Clear Console', 'workbench.debug.panel.action.clearReplAction');
  await page.waitForTimeout(1500);
  if ((await tickRows.count()) > 0) {
    throw new Error('main.tick is still traced after Remove in the Traces view');
  }
  const traceLens = editor.locator('.codelens-decoration a', { hasText: /^Trace$/ });
  await expectPoll(async () => (await traceLens.count()) > 0, 'a "Trace" CodeLens after removal');

  step('the "Trace" CodeLens above tick traces it again');
  await tickLine.scrollIntoViewIfNeeded();
  const lensAboveTick = await lensAbove(editor, tickLine, 'Trace');
  await lensAboveTick.click();
  await tickRows.first().waitFor();
  await tracesRow.waitFor();

  await page.keyboard.press('Shift+F5');
  await waitForSessionEnd();
  step('inline values and the Traces view are cleared when the session ends');
  await expectPoll(async () => !/calls/.test(await inlineText(tickLine)), 'no inline value after the session');

  step('starting the rust ticker configuration');
  await runCommand('Go to File', 'workbench.action.quickOpen', 'ticker.rs');
  const rustBody = editor.locator('.view-line', { hasText: 'p.x + p.y + i as i64' });
  await rustBody.waitFor();
  await page.keyboard.press('F1');
  await page.locator('.quick-input-widget input').fill('debug rust ticker');
  await page.locator('.quick-input-list .monaco-list-row', { hasText: 'rust ticker' }).first().waitFor();
  await page.keyboard.press('Enter');
  await repl.locator('.monaco-list-row', { hasText: 'ready' }).first().waitFor();

  step('right-click inside the Rust tick, "Trace function", while it runs');
  await rustBody.click();
  await rustBody.click({ button: 'right' });
  await clickMenuItem('Trace function');
  const rustRows = repl.locator('.monaco-list-row', {
    hasText: /> thread\(\d+\): ticker::tick\(\d+, Point \{ x: \d+, y: \d+ \}, "tick"\)/,
  });
  await rustRows.first().waitFor();
  await traces.locator('.monaco-list-row', { hasText: 'ticker::tick' }).first().waitFor();
  await page.screenshot({ path: `${shots}/vscode-trace-rust.png` });
  await page.keyboard.press('Shift+F5');
  await waitForSessionEnd();
  step('passed');
} catch (error) {
  failed = true;
  console.error(`e2e: FAILED: ${error instanceof Error ? error.message : String(error)}`);
  try {
    const text = await page.locator('.repl').innerText({ timeout: 2000 });
    console.error(`e2e: Debug Console:\n${text}`);
  } catch {
    console.error('e2e: no Debug Console');
  }
  await page.screenshot({ path: failureShot }).catch(() => undefined);
  console.error(`e2e: screenshot of the failure: ${failureShot}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);

/**
 * Runs a command through the command palette (`id` is only documentation), or
 * with `argument`, opens a file through Quick Open, picking the row showing
 * `rowText` (default: the argument).
 */
async function runCommand(title, _id, argument, rowText) {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor();
  // Quick Open ("Go to File") is the palette without the leading '>'.
  await input.fill(argument ?? `>${title}`);
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: rowText ?? argument ?? title }).first();
  await row.waitFor();
  await row.click();
  await page.locator('.quick-input-widget').waitFor({ state: 'hidden' });
}

/**
 * Clicks an entry of the open context menu. VS Code ignores a click that comes
 * too soon after the menu opened, so hover first, wait, and check it closed.
 */
async function clickMenuItem(label) {
  const item = page.locator('.monaco-menu .action-label', { hasText: new RegExp(`^${label}$`) });
  await item.hover();
  await page.waitForTimeout(500);
  await item.click();
  await page.locator('.monaco-menu').waitFor({ state: 'hidden', timeout: 5000 });
}

/** Folds or unfolds a view of the side bar by its title. */
async function setExpanded(title, expanded) {
  const header = page.locator('.pane-header', { hasText: new RegExp(`^${title}`) }).first();
  if (((await header.getAttribute('aria-expanded')) === 'true') !== expanded) {
    await header.click();
  }
}

/** A button of the debug toolbar, by its icon. */
function toolbarAction(icon) {
  return page.locator(`.debug-toolbar .action-item .action-label.codicon-${icon}`).first();
}

/** The number a Variables view row shows for its value. */
async function argumentValue(row) {
  const m = /(\d+)\s*$/.exec((await row.textContent()) ?? '');
  return m ? Number(m[1]) : -1;
}

/** The count at the start of a Traces view row's description ("1,234 calls · …"). */
async function callCount(row) {
  const text = (await row.locator('.label-description').textContent()) ?? '';
  const m = /^([\d,]+) calls?/.exec(text);
  if (!m) {
    throw new Error(`no count in the Traces view row: "${text}"`);
  }
  return Number(m[1].replaceAll(',', ''));
}

/**
 * The text a line shows, with what decorations add after it: VS Code draws
 * an extension's `after` text as CSS generated content, which the DOM's
 * text does not hold.
 */
async function inlineText(line) {
  return line.evaluate((el) => {
    let text = el.textContent ?? '';
    for (const span of el.querySelectorAll('span')) {
      for (const pseudo of ['::before', '::after']) {
        const content = getComputedStyle(span, pseudo).content;
        if (content && content !== 'none' && content !== 'normal') {
          text += ' ' + content.replace(/^"|"$/g, '');
        }
      }
    }
    return text;
  });
}

/** The CodeLens link titled `title` on the lens line right above `line`. */
async function lensAbove(editor, line, title) {
  const box = await line.boundingBox();
  const lenses = editor.locator('.codelens-decoration a', { hasText: new RegExp(`^${title}$`) });
  for (const lens of await lenses.all()) {
    const b = await lens.boundingBox();
    if (box && b && b.y < box.y && box.y - b.y < 2 * box.height) {
      return lens;
    }
  }
  throw new Error(`no "${title}" CodeLens right above the line`);
}

/** Waits until `check` holds, for up to TIMEOUT. */
async function expectPoll(check, what) {
  const deadline = Date.now() + TIMEOUT;
  while (Date.now() < deadline) {
    if (await check()) {
      return;
    }
    await page.waitForTimeout(250);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The debug toolbar disappears when the session is over. */
async function waitForSessionEnd() {
  await page.locator('.debug-toolbar').waitFor({ state: 'hidden' });
}
