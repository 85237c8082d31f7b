// Where functions are defined in a Go, C, C++ or Rust file, read from the
// text alone.
//
// The CodeLens above each function comes from the language extension's
// document symbols when one is installed; a bare editor (code-server without
// the Go extension, say) has none, so this scanner is the fallback. It only
// needs to find the line holding a definition's name: the adapter resolves
// the function from that position through DWARF, so a definition it misses
// only loses its lens, and one it invents is answered "no function there".
// Go and Rust are regular enough for one pattern each; C and C++ take a
// definition to be a line at column 0 naming a function before `(` whose
// body's `{` comes before any `;`. Pure, unit-tested.

export interface FoundFunction {
  name: string;
  /** 0-based line and character of the name. */
  line: number;
  character: number;
}

const GO = /^func\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)\s*(?:\[[^\]]*\]\s*)?\(/;
const RUST =
  /^(\s*)(?:pub(?:\([^)]*\))?\s+)?(?:default\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?(?:extern\s+(?:"[^"]*"\s+)?)?fn\s+([A-Za-z_]\w*)/;
// A C/C++ definition's first line: an optional return type, then the name and "(".
const C_HEAD = /^(?:[A-Za-z_][\w\s*&:<>,~]*?[\s*&])?((?:[A-Za-z_]\w*::)*~?[A-Za-z_]\w*)\s*\(/;
const C_NOT_FUNCTION = /^(?:if|for|while|switch|return|else|do|case|sizeof|typedef|struct|union|enum|using|namespace|template|class|goto|extern\s+"C"\s*\{)\b/;

/** How many lines after a candidate are read to find its `{` or `;`. */
const LOOKAHEAD = 12;

/** True when the body's `{` comes before any `;` from (line, character) on. */
function opensBody(lines: string[], line: number, character: number): boolean {
  for (let i = line; i < Math.min(lines.length, line + LOOKAHEAD); i++) {
    const text = stripLineComment(i === line ? (lines[i] ?? '').slice(character) : (lines[i] ?? ''));
    for (const ch of text) {
      if (ch === '{') {
        return true;
      }
      if (ch === ';') {
        return false;
      }
    }
  }
  return false;
}

function stripLineComment(text: string): string {
  const at = text.indexOf('//');
  return at < 0 ? text : text.slice(0, at);
}

function scanGo(lines: string[]): FoundFunction[] {
  const found: FoundFunction[] = [];
  lines.forEach((text, line) => {
    const m = GO.exec(text);
    if (m?.[1] !== undefined) {
      found.push({ name: m[1], line, character: text.indexOf(m[1], 4) });
    }
  });
  return found;
}

function scanRust(lines: string[]): FoundFunction[] {
  const found: FoundFunction[] = [];
  lines.forEach((text, line) => {
    const m = RUST.exec(text);
    const name = m?.[2];
    if (name === undefined) {
      return;
    }
    const character = text.indexOf(`fn ${name}`) + 3;
    if (opensBody(lines, line, character)) {
      found.push({ name, line, character });
    }
  });
  return found;
}

function scanC(lines: string[]): FoundFunction[] {
  const found: FoundFunction[] = [];
  let inComment = false;
  lines.forEach((raw, line) => {
    let text = raw;
    if (inComment) {
      const end = text.indexOf('*/');
      if (end < 0) {
        return;
      }
      inComment = false;
      text = ' '.repeat(end + 2) + text.slice(end + 2);
    }
    const open = text.indexOf('/*');
    if (open >= 0 && text.indexOf('*/', open + 2) < 0) {
      inComment = true;
      text = text.slice(0, open);
    }
    if (text === '' || /^[\s#]/.test(text) || text.startsWith('//') || text.startsWith('/*') || C_NOT_FUNCTION.test(text)) {
      return;
    }
    const m = C_HEAD.exec(text);
    const name = m?.[1];
    if (!m || name === undefined) {
      return;
    }
    const paren = m[0].length - 1;
    if (text.slice(0, paren).includes('=')) {
      return; // an initialiser such as `int x = f(...)`
    }
    if (opensBody(lines, line, paren)) {
      found.push({ name, line, character: m[0].lastIndexOf(name) });
    }
  });
  return found;
}

/** The functions defined in `text`, for the languages logprobe traces; none for others. */
export function scanFunctions(text: string, languageId: string): FoundFunction[] {
  const lines = text.split(/\r?\n/);
  switch (languageId) {
    case 'go':
      return scanGo(lines);
    case 'rust':
      return scanRust(lines);
    case 'c':
    case 'cpp':
      return scanC(lines);
    default:
      return [];
  }
}
