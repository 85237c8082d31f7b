//! Shared libraries named in a function pattern: `libfoo.so:foo_.*`
//! traces the functions of `libfoo.so` that match `foo_.*`. The part
//! before the `:` is a file name (`libfoo.so`, `libfoo.so.1`) or a path
//! (`./build/libfoo.so`); a pattern without it names the executable's
//! functions. A name is found where the program's loader finds it: among
//! the libraries the executable needs (`DT_NEEDED`, and theirs in turn),
//! searched in `DT_RPATH`, `LD_LIBRARY_PATH`, `DT_RUNPATH`, the
//! directories of `/etc/ld.so.conf` and the system's; in a running
//! process, among the files it has mapped (a library it loaded with
//! `dlopen` too).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The library part of `pattern` and the regular expression for its
/// functions. A pattern names a library only when the text before its
/// first `:` (not `::`, which C++ and Rust names use) looks like a file:
/// a path with `/`, or a name with `.so`, and nothing of a regular
/// expression but dots.
pub fn split(pattern: &str) -> (Option<&str>, &str) {
    let Some((lib, rest)) = pattern.split_once(':') else {
        return (None, pattern);
    };
    let is_file = !lib.is_empty()
        && !rest.starts_with(':')
        && (lib.contains('/') || lib.contains(".so"))
        && !lib.contains(|c: char| "^$*+?()[]{}|\\".contains(c) || c.is_whitespace());
    match is_file {
        true => (Some(lib), rest),
        false => (None, pattern),
    }
}

/// The file of library `name` (as [`split`] found it) for the program
/// `exe`, running as `pid` when attached; its real path (symbolic links
/// resolved), which is how the kernel names its mapping.
pub fn resolve(name: &str, exe: &Path, pid: Option<i32>) -> Result<PathBuf> {
    if name.contains('/') {
        return std::fs::canonicalize(name).with_context(|| format!("no shared library {name}"));
    }
    if let Some(pid) = pid {
        if let Some(found) = mapped(name, pid) {
            return Ok(found);
        }
    }
    let mut seen = HashSet::new();
    let mut queue = vec![exe.to_path_buf()];
    let mut needed_names = Vec::new();
    while let Some(object) = queue.pop() {
        let Ok(dynamic) = Dynamic::read(&object) else {
            continue;
        };
        for needed in &dynamic.needed {
            if !seen.insert(needed.clone()) {
                continue;
            }
            let Some(found) = dynamic.find(needed, &object) else {
                continue;
            };
            if names(needed, name) || names(&file_name(&found), name) {
                return std::fs::canonicalize(&found)
                    .with_context(|| format!("no shared library {}", found.display()));
            }
            needed_names.push(needed.clone());
            queue.push(found);
        }
    }
    match needed_names.is_empty() {
        true => bail!("{} loads no shared library named {name}", exe.display()),
        false => bail!(
            "{} loads no shared library named {name} (it loads {})",
            exe.display(),
            needed_names.join(", ")
        ),
    }
}

/// Whether library file name `file` is what `name` names: the same, or
/// the same up to a version (`libc.so` names `libc.so.6`).
fn names(file: &str, name: &str) -> bool {
    file == name
        || file
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('.') && name.contains(".so"))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A file process `pid` has mapped that `name` names.
fn mapped(name: &str, pid: i32) -> Option<PathBuf> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let found = crate::backend::ebpf::addresses::mappings(&maps)
        .map(|m| Path::new(m.path))
        .find(|p| p.is_absolute() && names(&file_name(p), name))
        .map(Path::to_path_buf);
    found
}

/// The libraries (`DT_NEEDED`) the ELF object `data` names.
pub fn needed(data: &[u8]) -> Result<Vec<String>> {
    Ok(Dynamic::parse(data)?.needed)
}

/// What the loader reads of an object's dynamic section.
struct Dynamic {
    needed: Vec<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
}

impl Dynamic {
    fn read(path: &Path) -> Result<Dynamic> {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Dynamic::parse(&data).with_context(|| format!("reading {}", path.display()))
    }

    /// The dynamic section of the ELF object `data`.
    fn parse(data: &[u8]) -> Result<Dynamic> {
        use object::read::elf::{Dyn, ElfFile64, FileHeader};
        let file = ElfFile64::<object::Endianness>::parse(data).context("not a 64-bit ELF file")?;
        let endian = file.endian();
        let sections = file.elf_header().sections(endian, data)?;
        let mut out = Dynamic {
            needed: Vec::new(),
            rpath: Vec::new(),
            runpath: Vec::new(),
        };
        let Some((entries, link)) = sections.dynamic(endian, data)? else {
            return Ok(out);
        };
        let strings = sections.strings(endian, data, link)?;
        for d in entries {
            let Some(tag) = d.tag32(endian) else { continue };
            let list = match tag {
                object::elf::DT_NEEDED => &mut out.needed,
                object::elf::DT_RPATH => &mut out.rpath,
                object::elf::DT_RUNPATH => &mut out.runpath,
                _ => continue,
            };
            let Ok(s) = d.string(endian, strings) else {
                continue;
            };
            list.push(String::from_utf8_lossy(s).into_owned());
        }
        Ok(out)
    }

    /// Where the loader finds `needed` for the object at `from`.
    fn find(&self, needed: &str, from: &Path) -> Option<PathBuf> {
        if needed.contains('/') {
            return Some(PathBuf::from(needed));
        }
        let origin = from.parent().unwrap_or(Path::new("/"));
        let expand = |list: &[String]| -> Vec<PathBuf> {
            list.iter()
                .flat_map(|l| l.split(':'))
                .filter(|d| !d.is_empty())
                .map(|d| {
                    let d = d
                        .replace("${ORIGIN}", &origin.to_string_lossy())
                        .replace("$ORIGIN", &origin.to_string_lossy());
                    PathBuf::from(d)
                })
                .collect()
        };
        let env: Vec<String> = std::env::var("LD_LIBRARY_PATH").into_iter().collect();
        // DT_RPATH is searched only when there is no DT_RUNPATH.
        let mut dirs = match self.runpath.is_empty() {
            true => expand(&self.rpath),
            false => Vec::new(),
        };
        dirs.extend(expand(&env));
        dirs.extend(expand(&self.runpath));
        dirs.extend(ld_so_conf(Path::new("/etc/ld.so.conf"), 0));
        dirs.extend(
            [
                "/lib/x86_64-linux-gnu",
                "/usr/lib/x86_64-linux-gnu",
                "/lib64",
                "/usr/lib64",
                "/lib",
                "/usr/lib",
            ]
            .map(PathBuf::from),
        );
        dirs.into_iter()
            .map(|d| d.join(needed))
            .find(|p| p.is_file())
    }
}

/// The directories `/etc/ld.so.conf` lists, its `include`s followed.
fn ld_so_conf(path: &Path, depth: u32) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(glob) = line.strip_prefix("include") {
            let glob = glob.trim();
            if depth > 4 || glob.is_empty() {
                continue;
            }
            out.extend(
                include(glob, path)
                    .into_iter()
                    .flat_map(|f| ld_so_conf(&f, depth + 1)),
            );
        } else if line.starts_with('/') {
            out.push(PathBuf::from(line));
        }
    }
    out
}

/// The files an `include` line of ld.so.conf names: a path whose file
/// name may hold one `*`, relative to the including file's directory.
fn include(glob: &str, from: &Path) -> Vec<PathBuf> {
    let glob = match glob.starts_with('/') {
        true => PathBuf::from(glob),
        false => from.parent().unwrap_or(Path::new("/")).join(glob),
    };
    let (Some(dir), Some(pattern)) = (glob.parent(), glob.file_name()) else {
        return Vec::new();
    };
    let pattern = pattern.to_string_lossy();
    let (prefix, suffix) = pattern.split_once('*').unwrap_or((&pattern, ""));
    let exact = !pattern.contains('*');
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let n = file_name(p);
            match exact {
                true => n == pattern,
                false => {
                    n.starts_with(prefix)
                        && n.ends_with(suffix)
                        && n.len() >= prefix.len() + suffix.len()
                }
            }
        })
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_is_named_before_a_single_colon() {
        assert_eq!(split("libfoo.so:foo_.*"), (Some("libfoo.so"), "foo_.*"));
        assert_eq!(split("libc.so.6:^puts$"), (Some("libc.so.6"), "^puts$"));
        assert_eq!(split("./lib/libm.so:sin"), (Some("./lib/libm.so"), "sin"));
        assert_eq!(split("main::work"), (None, "main::work"));
        assert_eq!(split("geo::Shape::area"), (None, "geo::Shape::area"));
        assert_eq!(split("a.so::b"), (None, "a.so::b"));
        assert_eq!(split("(x|y).so:z"), (None, "(x|y).so:z"));
        assert_eq!(split("foo"), (None, "foo"));
    }

    #[test]
    fn a_name_without_version_names_the_versioned_file() {
        assert!(names("libc.so.6", "libc.so"));
        assert!(names("libc.so.6", "libc.so.6"));
        assert!(!names("libcap.so.2", "libc.so"));
        assert!(!names("libc.so.6", "libc"));
    }
}
