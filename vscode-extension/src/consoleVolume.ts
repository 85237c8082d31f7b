// The console volume: how many hits become Debug Console lines (every hit, a
// sample of each trace's hits per second, or one summary line per trace and
// second; docs/protocol.md). The `logprobe.consoleVolume` and
// `logprobe.consoleLinesPerSecond` settings fill a launch configuration that
// does not choose, and a change of the settings reaches running sessions
// through the adapter's `setConsoleVolume` request. Pure, unit-tested.

export const CONSOLE_VOLUMES = ['all', 'sample', 'summary'] as const;
export type ConsoleVolume = (typeof CONSOLE_VOLUMES)[number];
export const DEFAULT_VOLUME: ConsoleVolume = 'sample';
export const DEFAULT_LINES_PER_SECOND = 10;

/** What reads the `logprobe` settings (vscode.WorkspaceConfiguration fits). */
export interface Settings {
  get<T>(section: string): T | undefined;
}

export function isConsoleVolume(value: unknown): value is ConsoleVolume {
  return (CONSOLE_VOLUMES as readonly unknown[]).includes(value);
}

/** The settings as `setConsoleVolume` arguments; unusable values fall back to the defaults. */
export function consoleVolumeArguments(settings: Settings): { volume: ConsoleVolume; linesPerSecond: number } {
  const volume = settings.get<unknown>('consoleVolume');
  const lines = settings.get<unknown>('consoleLinesPerSecond');
  return {
    volume: isConsoleVolume(volume) ? volume : DEFAULT_VOLUME,
    linesPerSecond: typeof lines === 'number' && Number.isInteger(lines) && lines > 0 ? lines : DEFAULT_LINES_PER_SECOND,
  };
}
