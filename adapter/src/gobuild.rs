//! Builds the Go package a trace names (`logprobe trace [--test] PACKAGE
//! REGEX`, DAP `package`) with the Go toolchain on PATH, as `dlv trace`
//! does: with `-gcflags=all=-N -l` (every argument where DWARF says, no
//! inlining) unless it is asked for an optimized build, into a temporary
//! directory that goes away with the [`Built`] that names it, however the
//! trace ends (an error, a signal handled by the face, the session's end).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::config::GoPackage;

/// The Go toolchain refused to build the package: its own message, which
/// spans lines (one per compile error) and is shown as it is.
#[derive(Debug, thiserror::Error)]
#[error("building {package} failed:\n{output}")]
pub struct BuildFailed {
    pub package: String,
    pub output: String,
}
use crate::trace::StopHandle;

/// A binary built for a trace; dropping it removes it and its directory.
#[derive(Debug)]
pub struct Built {
    /// The executable: `DIR/NAME`, or `DIR/NAME.test` for a test binary.
    pub exe: PathBuf,
    /// The package's source directory: where a test binary runs, as under
    /// `go test`.
    pub package_dir: PathBuf,
    /// Removed on drop; kept here so the binary lives as long as the trace.
    pub temp: TempDir,
}

/// A directory of logprobe's own under the system's temporary directory,
/// removed with everything in it when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Result<TempDir> {
        let template = std::env::temp_dir().join("logprobe-build-XXXXXX");
        let path = nix::unistd::mkdtemp(&template)
            .with_context(|| format!("cannot create a directory like {}", template.display()))?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("logprobe: cannot remove {}: {e}", self.0.display());
            }
        }
    }
}

/// Runs `go ARGS` in `cwd` (None: logprobe's own), its stdout into
/// `dir/go.out` and its stderr into `dir/go.err`; ends it when `stop` is
/// requested. Ok(None) when it succeeded, Ok(Some(what it printed)) when
/// it failed.
fn go(
    args: &[&str],
    cwd: Option<&Path>,
    dir: &Path,
    stop: Option<&StopHandle>,
) -> Result<Option<String>> {
    let create = |name: &str| {
        let path = dir.join(name);
        std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))
    };
    let mut cmd = Command::new("go");
    // A process group of its own, so that ending the build ends the
    // compilers go started too (the face turns Ctrl-C into `stop`).
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(create("go.out")?))
        .stderr(Stdio::from(create("go.err")?));
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    // go's own work directory inside ours, unless the user chose where it
    // goes: go leaves it behind when it is interrupted, and the guard then
    // removes it with the rest.
    if std::env::var_os("GOTMPDIR").is_none_or(|v| v.is_empty()) {
        cmd.env("GOTMPDIR", dir);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "the Go toolchain (`go`) is not on PATH: install Go (apt-get install golang-go) to build and trace a package"
        ),
        Err(e) => return Err(anyhow!(e).context("cannot run `go`")),
    };
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for `go`")? {
            break status;
        }
        if stop.is_some_and(StopHandle::requested) {
            end(&mut child);
            bail!("interrupted while building");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if status.success() {
        return Ok(None);
    }
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let output = read("go.err") + &read("go.out");
    let output = output.trim_end();
    if output.is_empty() {
        return Ok(Some(format!("`go {}` ended ({status})", args.join(" "))));
    }
    Ok(Some(output.to_string()))
}

/// Ends `go` and what it started (the process group of our own child,
/// which it leads) as Ctrl-C would; killed if not ended in 5 s.
fn end(child: &mut std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGINT,
        );
    }
    for _ in 0..250 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Builds `pkg` (resolved against `cwd`, None: logprobe's own) into a new
/// temporary directory. A build that fails is an error carrying go's own
/// output. `stop`, when requested, ends the build.
pub fn build(pkg: &GoPackage, cwd: Option<&Path>, stop: Option<&StopHandle>) -> Result<Built> {
    let temp = TempDir::new()?;
    let p = pkg.package.as_str();
    // What the package is: its name (a command is `main`), its directory,
    // its import path (the binary is named after its last element).
    let list = ["list", "-f", "{{.Name}}\n{{.Dir}}\n{{.ImportPath}}", p];
    if let Some(out) = go(&list, cwd, temp.path(), stop)? {
        bail!("cannot find the Go package {p}:\n{out}");
    }
    let listed = std::fs::read_to_string(temp.path().join("go.out"))
        .context("reading `go list`'s output")?;
    let mut lines = listed.lines();
    let (Some(name), Some(dir), Some(import)) = (lines.next(), lines.next(), lines.next()) else {
        bail!("`go list {p}` printed {listed:?}, not a package's name, directory and path");
    };
    if lines.next().is_some() {
        bail!("{p} names more than one Go package: give one");
    }
    if name != "main" && !pkg.test {
        bail!("{p} is package {name}, not a command (package main): trace its tests with --test (DAP: \"test\": true), or give a main package");
    }
    let base = import.rsplit('/').next().unwrap_or("main");
    let exe = if pkg.test {
        temp.path().join(format!("{base}.test"))
    } else {
        temp.path().join(base)
    };
    let out = exe.to_string_lossy().into_owned();
    let mut args: Vec<&str> = if pkg.test {
        vec!["test", "-c", "-o", &out]
    } else {
        vec!["build", "-o", &out]
    };
    if !pkg.optimized {
        args.push("-gcflags=all=-N -l");
    }
    // After ours, so that a -gcflags of the user's is the one go keeps.
    args.extend(pkg.build_flags.iter().map(String::as_str));
    args.push(p);
    if let Some(out) = go(&args, cwd, temp.path(), stop)? {
        return Err(BuildFailed {
            package: p.to_string(),
            output: out,
        }
        .into());
    }
    if !exe.is_file() {
        if pkg.test {
            bail!("{p} has no test files: there is no test binary to trace");
        }
        bail!("`go build` of {p} wrote no binary");
    }
    Ok(Built {
        exe,
        package_dir: PathBuf::from(dir),
        temp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_directory_goes_away_with_what_is_in_it() {
        let t = TempDir::new().expect("created");
        let path = t.path().to_path_buf();
        std::fs::write(path.join("bin"), b"x").expect("written");
        drop(t);
        assert!(!path.exists());
    }
}
