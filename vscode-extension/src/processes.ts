// Lists running processes for the attach picker (`logprobe.pickProcess`), read
// from /proc so no external tool is needed. Unit-tested against the real /proc.

import * as fs from 'fs';
import * as path from 'path';

export interface ProcessInfo {
  pid: number;
  /** The command line, arguments separated by spaces; the process name if it has none (kernel threads). */
  command: string;
}

export function listProcesses(procRoot = '/proc'): ProcessInfo[] {
  const result: ProcessInfo[] = [];
  for (const name of fs.readdirSync(procRoot)) {
    if (!/^\d+$/.test(name)) {
      continue;
    }
    try {
      const cmdline = fs.readFileSync(path.join(procRoot, name, 'cmdline'), 'utf8');
      const command = cmdline.split('\0').filter((a) => a !== '').join(' ');
      if (command === '') {
        continue; // kernel threads cannot be traced
      }
      result.push({ pid: Number(name), command });
    } catch {
      // The process exited while we listed it.
    }
  }
  return result.sort((a, b) => b.pid - a.pid);
}
