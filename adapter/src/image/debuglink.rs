//! Separate debug information, found the way gdb finds it: a file named
//! by the binary's build id under `/usr/lib/debug/.build-id/`, then the
//! file `.gnu_debuglink` names, beside the binary, in its `.debug/`
//! directory, and under `/usr/lib/debug` followed by the binary's
//! directory. A candidate counts only if it is what the binary asks for:
//! the same build id, or the CRC-32 `.gnu_debuglink` records.

use std::path::{Path, PathBuf};

use object::Object;

/// gdb's default `debug-file-directory`.
const DEBUG_DIR: &str = "/usr/lib/debug";

/// The places to look for `file`'s debug information, in gdb's order,
/// each with what it must match.
pub(super) fn candidates(path: &Path, file: &object::File) -> Vec<(PathBuf, Expect)> {
    let mut out = Vec::new();
    if let Ok(Some(id)) = file.build_id() {
        if let Some((first, rest)) = id.split_first() {
            let rest: String = rest.iter().map(|b| format!("{b:02x}")).collect();
            out.push((
                Path::new(DEBUG_DIR)
                    .join(".build-id")
                    .join(format!("{first:02x}"))
                    .join(format!("{rest}.debug")),
                Expect::BuildId(id.to_vec()),
            ));
        }
    }
    if let Ok(Some((name, crc))) = file.gnu_debuglink() {
        let Ok(name) = std::str::from_utf8(name) else {
            return out;
        };
        // The directory of the binary itself, symbolic links resolved, as
        // gdb takes it.
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let dir = real.parent().unwrap_or(Path::new("/"));
        let global = Path::new(DEBUG_DIR).join(dir.strip_prefix("/").unwrap_or(dir));
        for d in [dir.to_path_buf(), dir.join(".debug"), global] {
            out.push((d.join(name), Expect::Crc(crc)));
        }
    }
    out
}

/// What a candidate debug file must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expect {
    BuildId(Vec<u8>),
    Crc(u32),
}

/// The separate debug file of the binary at `path` and its bytes, if one
/// is found (never the binary itself).
pub(super) fn find(path: &Path, file: &object::File) -> Option<(PathBuf, Vec<u8>)> {
    let me = std::fs::canonicalize(path).ok();
    for (candidate, expect) in candidates(path, file) {
        if std::fs::canonicalize(&candidate).ok() == me {
            continue;
        }
        let Ok(data) = std::fs::read(&candidate) else {
            continue;
        };
        let matches = match &expect {
            Expect::Crc(crc) => crc32fast::hash(&data) == *crc,
            Expect::BuildId(id) => object::File::parse(&*data)
                .ok()
                .and_then(|f| f.build_id().ok().flatten().map(|b| b == id.as_slice()))
                .unwrap_or(false),
        };
        if matches {
            return Some((candidate, data));
        }
    }
    None
}
