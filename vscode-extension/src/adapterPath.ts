// Finds the `logprobe` binary that runs the debug adapter.
//
// Order: the `logprobe.adapterPath` setting, then the binary bundled inside the
// extension (bin/<platform>-<arch>/logprobe), then `logprobe` on PATH. A setting
// that names a missing file is an error rather than a silent fall-back: the user
// asked for that binary. This module is pure (file checks are injected) so it is
// unit-tested without VS Code.

import * as path from 'path';

/** Where the adapter binary was found. */
export type AdapterOrigin = 'setting' | 'bundled' | 'path';

export type AdapterResolution =
  | { ok: true; path: string; origin: AdapterOrigin }
  | { ok: false; message: string };

export interface AdapterSearch {
  /** Value of the `logprobe.adapterPath` setting ('' or undefined when unset). */
  setting?: string;
  /** Root directory of the installed extension. */
  extensionPath: string;
  platform: string;
  arch: string;
  /** The PATH environment variable. */
  pathEnv?: string;
  /** The user's home directory, to expand a leading `~/` in the setting. */
  home?: string;
  /** True if `file` exists and is a regular file. */
  isFile: (file: string) => boolean;
}

/** Platform-arch pairs the extension bundles an adapter for. */
const BUNDLED_TARGETS = new Set(['linux-x64']);

/** Path of the adapter bundled for this platform, whether or not it exists. */
export function bundledAdapterPath(extensionPath: string, platform: string, arch: string): string | undefined {
  const target = `${platform}-${arch}`;
  if (!BUNDLED_TARGETS.has(target)) {
    return undefined;
  }
  return path.join(extensionPath, 'bin', target, 'logprobe');
}

export function resolveAdapterPath(search: AdapterSearch): AdapterResolution {
  const setting = search.setting?.trim() ?? '';
  if (setting !== '') {
    let file = setting;
    if ((file === '~' || file.startsWith('~/')) && search.home) {
      file = path.join(search.home, file.slice(1));
    }
    if (!path.isAbsolute(file)) {
      return { ok: false, message: `logprobe.adapterPath must be an absolute path, got "${setting}".` };
    }
    if (!search.isFile(file)) {
      return { ok: false, message: `logprobe.adapterPath is set to "${file}", but no such file exists.` };
    }
    return { ok: true, path: file, origin: 'setting' };
  }

  const bundled = bundledAdapterPath(search.extensionPath, search.platform, search.arch);
  if (bundled && search.isFile(bundled)) {
    return { ok: true, path: bundled, origin: 'bundled' };
  }

  for (const dir of (search.pathEnv ?? '').split(path.delimiter)) {
    if (dir === '') {
      continue;
    }
    const candidate = path.join(dir, 'logprobe');
    if (search.isFile(candidate)) {
      return { ok: true, path: candidate, origin: 'path' };
    }
  }

  return {
    ok: false,
    message:
      'Cannot find the logprobe adapter: set "logprobe.adapterPath" to the logprobe binary, ' +
      'or put logprobe on PATH (build it with `cargo build --release`).',
  };
}
