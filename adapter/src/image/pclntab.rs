//! Function names and ranges from Go's `.gopclntab`, for binaries whose
//! symbol table and DWARF were stripped: the Go runtime needs this table
//! itself, so it survives `strip`. Only the header layout of Go 1.18 and
//! later is read (magic `0xfffffff0` / `0xfffffff1`).

use anyhow::{bail, Context, Result};
use object::{Object, ObjectSection};

use super::{Function, Lang};

fn word(data: &[u8], at: usize, size: usize) -> Result<u64> {
    let bytes = data.get(at..at + size).context("truncated .gopclntab")?;
    let mut buf = [0u8; 8];
    buf[..size].copy_from_slice(bytes);
    Ok(u64::from_le_bytes(buf))
}

pub(super) fn functions(file: &object::File) -> Result<Vec<Function>> {
    let Some(section) = file.section_by_name(".gopclntab") else {
        return Ok(Vec::new());
    };
    let data = section.data()?;
    let magic = word(data, 0, 4)? as u32;
    if magic != 0xffff_fff0 && magic != 0xffff_fff1 {
        bail!("unsupported .gopclntab version (magic {magic:#x}); built by a Go older than 1.18?");
    }
    let ptr = *data.get(7).context("truncated .gopclntab")? as usize;
    if ptr != 8 {
        bail!("unexpected pointer size {ptr} in .gopclntab");
    }
    let field = |i: usize| word(data, 8 + i * ptr, ptr);
    let nfunc = field(0)? as usize;
    let text_start = field(2)?;
    let funcname_off = field(3)? as usize;
    let pcln_off = field(7)? as usize;
    let functab = data.get(pcln_off..).context("truncated .gopclntab")?;
    let mut out = Vec::with_capacity(nfunc);
    for i in 0..nfunc {
        let entry = word(functab, i * 8, 4)?;
        let func_off = word(functab, i * 8 + 4, 4)? as usize;
        let next = word(functab, (i + 1) * 8, 4)?;
        let name_off = word(functab, func_off + 4, 4)? as usize;
        let names = data
            .get(funcname_off + name_off..)
            .context("truncated .gopclntab")?;
        let end = names.iter().position(|&b| b == 0).unwrap_or(names.len());
        let name = String::from_utf8_lossy(&names[..end]).into_owned();
        out.push(Function {
            name,
            low: text_start + entry,
            high: text_start + next,
            file: None,
            line: None,
            params: Vec::new(),
            lang: Lang::Go,
            has_dwarf: false,
        });
    }
    Ok(out)
}
