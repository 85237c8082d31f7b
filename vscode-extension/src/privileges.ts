// Decides whether the adapter binary has the privileges its backend needs, and
// says how to grant them.
//
// eBPF needs CAP_BPF and CAP_PERFMON; attaching with ptrace to a process that is
// not our child needs CAP_SYS_PTRACE. Root has them all. Capabilities are read
// from `getcap` output, which this module parses; running `getcap` is left to the
// caller so the decision itself stays pure and unit-tested.

/** The one-line fix shown to users, and repeated in the README. */
export function grantHint(adapterPath: string): string {
  return (
    'Run VS Code as root, or grant the adapter the capabilities once: ' +
    `sudo setcap cap_bpf,cap_perfmon,cap_sys_ptrace+ep ${adapterPath}`
  );
}

/**
 * Capability names in the output of `getcap FILE`. Both formats are understood:
 * `FILE cap_bpf,cap_perfmon=ep` (libcap >= 2.41) and `FILE = cap_bpf,cap_perfmon+ep`.
 * Only effective+permitted sets count.
 */
export function parseGetcap(output: string): Set<string> {
  const caps = new Set<string>();
  for (const line of output.split('\n')) {
    // Each clause is "names" followed by an operator and flags, e.g. "cap_bpf,cap_perfmon=ep".
    for (const clause of line.matchAll(/((?:cap_[a-z_]+,?)+)\s*[=+]\s*([a-z]*)/g)) {
      const flags = clause[2] ?? '';
      if (!flags.includes('e') || !flags.includes('p')) {
        continue;
      }
      for (const name of (clause[1] ?? '').split(',')) {
        if (name !== '') {
          caps.add(name);
        }
      }
    }
  }
  return caps;
}

export interface PrivilegeQuery {
  /** Effective uid of the process that will start the adapter. */
  uid: number;
  /** Capabilities on the adapter file, or undefined if they could not be read. */
  fileCaps: Set<string> | undefined;
  /** The backend asked for in the debug configuration (undefined = adapter default, eBPF). */
  backend: string | undefined;
  request: 'launch' | 'attach';
}

/** The capabilities a configuration needs, in the order they are named to users. */
export function requiredCapabilities(backend: string | undefined, request: 'launch' | 'attach'): string[] {
  const caps: string[] = [];
  if (backend !== 'ptrace') {
    caps.push('cap_bpf', 'cap_perfmon');
  }
  if (request === 'attach' && backend !== 'ebpf') {
    caps.push('cap_sys_ptrace');
  }
  return caps;
}

/** A message naming the missing capabilities, or undefined when nothing is missing. */
export function missingPrivileges(query: PrivilegeQuery): string[] {
  if (query.uid === 0 || query.fileCaps === undefined) {
    return [];
  }
  const caps = query.fileCaps;
  return requiredCapabilities(query.backend, query.request).filter((c) => !caps.has(c));
}
