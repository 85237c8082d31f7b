//! `logprobe doctor`: what tracing needs on this machine, what of it is
//! here, and how to fix what is not.
//!
//! It asks the kernel rather than guessing from versions: the eBPF
//! backend's checks (`backend::ebpf::support`) load a trivial program,
//! probe for ring buffers and `bpf_loop`, then load logprobe's own program
//! (printing the verifier's time) and attach it through a uprobe-multi
//! link and a raw tracepoint. Around them it reports the kernel, the
//! privileges (root or capabilities), lockdown, what the ptrace backend
//! needs (`CAP_SYS_PTRACE`, Yama's `ptrace_scope`), and the tracefs and
//! debugfs mounts, which logprobe does not need. The exit status is
//! nonzero when the eBPF backend cannot work here; the `auto` backend's
//! fallback notice points here.

use std::path::Path;

use crate::backend::ebpf::support::{self, Refusal, SelfTest};

/// Capability bits (linux/capability.h).
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Present and working.
    Ok,
    /// Missing or refused; `fix` says what to do.
    Missing,
    /// Worth knowing, neither needed nor in the way.
    Note,
}

struct Check {
    status: Status,
    what: String,
    fix: Option<String>,
}

fn ok(what: impl Into<String>) -> Check {
    Check {
        status: Status::Ok,
        what: what.into(),
        fix: None,
    }
}

fn missing(what: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        status: Status::Missing,
        what: what.into(),
        fix: Some(fix.into()),
    }
}

fn note(what: impl Into<String>) -> Check {
    Check {
        status: Status::Note,
        what: what.into(),
        fix: None,
    }
}

/// Runs the checks, prints them, and returns the exit status: 0 when the
/// eBPF backend works here, 1 when it cannot.
pub fn run() -> anyhow::Result<i32> {
    let caps = Capabilities::of_self();
    let ebpf = ebpf_checks(&caps);
    let ptrace = ptrace_checks(&caps);
    let ebpf_works = ebpf.iter().all(|c| c.status != Status::Missing);
    let ptrace_works = ptrace.iter().all(|c| c.status != Status::Missing);
    println!("logprobe doctor: what tracing needs on this machine\n");
    section("machine", &machine_checks(&caps));
    section("eBPF backend (--backend ebpf)", &ebpf);
    section("ptrace backend (--backend ptrace)", &ptrace);
    section("mounts", &mount_checks());
    let verdict = |works: bool| {
        if works {
            "works here"
        } else {
            "cannot work here"
        }
    };
    println!(
        "eBPF: {}. ptrace: {}. --backend auto uses {}.",
        verdict(ebpf_works),
        verdict(ptrace_works),
        if ebpf_works { "eBPF" } else { "ptrace" }
    );
    Ok(if ebpf_works { 0 } else { 1 })
}

fn section(title: &str, checks: &[Check]) {
    println!("{title}");
    for c in checks {
        let tag = match c.status {
            Status::Ok => "ok     ",
            Status::Missing => "MISSING",
            Status::Note => "note   ",
        };
        println!("  {tag} {}", c.what);
        if let Some(fix) = &c.fix {
            println!("          fix: {fix}");
        }
    }
    println!();
}

fn machine_checks(caps: &Capabilities) -> Vec<Check> {
    let mut out = Vec::new();
    let release = read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into());
    let arch = std::env::consts::ARCH;
    if arch == "x86_64" {
        out.push(ok(format!("Linux {release} on {arch}")));
    } else {
        out.push(missing(
            format!("Linux {release} on {arch}"),
            "logprobe traces x86-64 programs only",
        ));
    }
    let uid = nix::unistd::geteuid();
    out.push(if uid.is_root() {
        ok("running as root")
    } else {
        note(format!(
            "running as uid {uid}, with CAP_BPF {}, CAP_PERFMON {}, CAP_SYS_PTRACE {}",
            yes(caps.has(CAP_BPF)),
            yes(caps.has(CAP_PERFMON)),
            yes(caps.has(CAP_SYS_PTRACE))
        ))
    });
    out.push(match read_trimmed("/sys/kernel/security/lockdown") {
        Some(l) if l.contains("[confidentiality]") => missing(
            "kernel lockdown: confidentiality (BPF programs may not read kernel memory)",
            "boot with lockdown=integrity or none: the eBPF backend needs bpf_probe_read_kernel",
        ),
        Some(l) if l.contains("[integrity]") => ok(
            "kernel lockdown: integrity (BPF may not write user memory; logprobe never does)",
        ),
        Some(_) => ok("kernel lockdown: none"),
        None => note(
            "kernel lockdown: unknown (securityfs is not mounted at /sys/kernel/security; the load test below is what counts)",
        ),
    });
    out
}

fn ebpf_checks(caps: &Capabilities) -> Vec<Check> {
    let mut out = Vec::new();
    match support::load_trivial() {
        Ok(()) => out.push(ok(
            "the bpf system call: this process may load tracing programs",
        )),
        Err(r) => {
            let fix = match r {
                Refusal::Permission if !caps.has(CAP_BPF) || !caps.has(CAP_PERFMON) => {
                    "run as root, or grant CAP_BPF and CAP_PERFMON (e.g. `setcap cap_bpf,cap_perfmon+ep logprobe`)".to_string()
                }
                Refusal::Permission => "lockdown or a security module refuses BPF: see the machine section".to_string(),
                Refusal::NoBpf => "use a kernel built with CONFIG_BPF_SYSCALL".to_string(),
                Refusal::Other(_) => "see `dmesg`; Linux 6.6 or later with BPF and uprobes is needed".to_string(),
            };
            out.push(missing(support::refusal_message(r), fix));
            // Nothing further can load.
            return out;
        }
    }
    out.push(match support::ring_buffers() {
        Ok(true) => ok("BPF ring buffers"),
        Ok(false) => missing("BPF ring buffers", "Linux 5.8 or later is needed"),
        Err(e) => missing(
            format!("BPF ring buffers: {e:#}"),
            "Linux 5.8 or later is needed",
        ),
    });
    out.push(match support::bpf_loop() {
        Ok(true) => ok("bpf_loop"),
        Ok(false) => missing("bpf_loop", "Linux 5.17 or later is needed"),
        Err(e) => missing(format!("bpf_loop: {e:#}"), "Linux 5.17 or later is needed"),
    });
    let SelfTest {
        load,
        uprobe_multi,
        raw_tracepoint,
    } = support::self_test();
    match load {
        Ok((took, programs)) => {
            out.push(ok(format!(
                "logprobe's BPF program loads ({:.1} ms to open and load)",
                took.as_secs_f64() * 1e3
            )));
            for p in programs {
                out.push(ok(format!(
                    "verified {} in {:.2} ms ({} instructions processed)",
                    p.program,
                    p.time.as_secs_f64() * 1e3,
                    p.insns
                )));
            }
        }
        Err(e) => out.push(missing(
            format!("logprobe's BPF program: {e:#}"),
            "Linux 6.6 or later with BPF, uprobes and bpf_probe_read_kernel is needed",
        )),
    }
    out.push(match uprobe_multi {
        Ok(()) => ok("uprobe-multi links (attached to logprobe itself, by file offset)"),
        Err(e) => missing(
            format!("uprobe-multi links: {e:#}"),
            "Linux 6.6 or later with CONFIG_UPROBES is needed",
        ),
    });
    out.push(match raw_tracepoint {
        Ok(()) => ok("raw tracepoints (sys_enter, for relaying a launched program's output)"),
        Err(e) => missing(
            format!("raw tracepoints: {e:#}"),
            "a kernel with CONFIG_FTRACE_SYSCALLS is needed",
        ),
    });
    out.push(if Path::new(support::VMLINUX_BTF).exists() {
        ok(format!(
            "kernel BTF at {} (floats read through a signal frame use it)",
            support::VMLINUX_BTF
        ))
    } else {
        note(format!(
            "no kernel BTF at {}: floats in XMM registers show as unreadable under eBPF (CONFIG_DEBUG_INFO_BTF)",
            support::VMLINUX_BTF
        ))
    });
    out
}

fn ptrace_checks(caps: &Capabilities) -> Vec<Check> {
    let mut out = Vec::new();
    let privileged = nix::unistd::geteuid().is_root() || caps.has(CAP_SYS_PTRACE);
    let scope = read_trimmed("/proc/sys/kernel/yama/ptrace_scope");
    if scope
        .as_deref()
        .is_some_and(|s| s != "0" && s != "1" && s != "2")
    {
        out.push(missing(
            format!(
                "Yama ptrace_scope {}: ptrace is disabled until reboot",
                scope.as_deref().unwrap_or("")
            ),
            "reboot with a lower kernel.yama.ptrace_scope (the eBPF backend does not use ptrace)",
        ));
        return out;
    }
    out.push(ok(
        "launching a program under ptrace (it is logprobe's child)",
    ));
    let attach = match (scope.as_deref(), privileged) {
        (_, true) => ok("-p PID: CAP_SYS_PTRACE (or root) allows attaching to any process"),
        (None | Some("0"), false) => ok("-p PID: processes of the same user (Yama ptrace_scope 0)"),
        (Some(s), false) => missing(
            format!("-p PID: Yama ptrace_scope {s} allows it only with CAP_SYS_PTRACE"),
            "run as root, or grant CAP_SYS_PTRACE (e.g. `setcap cap_sys_ptrace+ep logprobe`)",
        ),
    };
    // Attaching is one use among others: the backend still works.
    out.push(Check {
        status: if attach.status == Status::Missing {
            Status::Note
        } else {
            attach.status
        },
        ..attach
    });
    out
}

fn mount_checks() -> Vec<Check> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mounted = |fs: &str, at: &str| {
        mounts.lines().any(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next(), f.next(), f.next());
            point == Some(at) && kind == Some(fs)
        })
    };
    [
        ("tracefs", "/sys/kernel/tracing"),
        ("debugfs", "/sys/kernel/debug"),
    ]
    .into_iter()
    .map(|(fs, at)| {
        note(format!(
            "{fs} at {at}: {} (logprobe does not need it)",
            if mounted(fs, at) {
                "mounted"
            } else {
                "not mounted"
            }
        ))
    })
    .collect()
}

/// The effective capabilities of this process.
struct Capabilities(u64);

impl Capabilities {
    fn of_self() -> Capabilities {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        Capabilities(eff)
    }

    fn has(&self, cap: u32) -> bool {
        // CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON on kernels
        // from before they existed.
        let admin = self.0 & (1 << CAP_SYS_ADMIN) != 0;
        self.0 & (1 << cap) != 0 || (admin && matches!(cap, CAP_BPF | CAP_PERFMON))
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}
