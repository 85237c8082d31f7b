//! Function names and ranges from Go's `.gopclntab`, for binaries whose
//! symbol table and DWARF were stripped: the Go runtime needs this table
//! itself, so it survives `strip`. Only the header layout of Go 1.18 and
//! later is read (magic `0xfffffff0` / `0xfffffff1`).

use anyhow::{bail, Context, Result};
use object::{Object, ObjectSection};

use super::{Function, Lang};

fn word(data: &[u8], at: usize, size: usize) -> Result<u64> {
    let bytes = at
        .checked_add(size)
        .and_then(|end| data.get(at..end))
        .with_context(|| format!("truncated .gopclntab: no {size} bytes at offset {at}"))?;
    let mut buf = [0u8; 8];
    buf[..size].copy_from_slice(bytes);
    Ok(u64::from_le_bytes(buf))
}

pub(super) fn functions(file: &object::File) -> Result<Vec<Function>> {
    let Some(section) = file.section_by_name(".gopclntab") else {
        return Ok(Vec::new());
    };
    parse(section.data()?)
}

/// The functions `.gopclntab`'s bytes `data` name.
pub(crate) fn parse(data: &[u8]) -> Result<Vec<Function>> {
    let magic = word(data, 0, 4)? as u32;
    if magic != 0xffff_fff0 && magic != 0xffff_fff1 {
        bail!("unsupported .gopclntab version (magic {magic:#x}); built by a Go older than 1.18?");
    }
    let ptr = *data.get(7).context("truncated .gopclntab")? as usize;
    if ptr != 8 {
        bail!("unexpected pointer size {ptr} in .gopclntab");
    }
    let field = |i: usize| word(data, 8 + i * ptr, ptr);
    let offset = |i: usize| -> Result<usize> {
        usize::try_from(field(i)?).context("offset out of range in .gopclntab")
    };
    let nfunc = offset(0)?;
    let text_start = field(2)?;
    let funcname_off = offset(3)?;
    let pcln_off = offset(7)?;
    let functab = data.get(pcln_off..).context("truncated .gopclntab")?;
    // Each function takes 8 bytes of the table, so a count the table
    // cannot hold is refused before anything is allocated for it.
    if nfunc > functab.len() / 8 {
        bail!(
            "corrupt .gopclntab: {nfunc} functions in a table of {} bytes",
            functab.len()
        );
    }
    let mut out = Vec::with_capacity(nfunc);
    for i in 0..nfunc {
        let entry = word(functab, i * 8, 4)?;
        let func_off = word(functab, i * 8 + 4, 4)? as usize;
        let next = word(functab, (i + 1) * 8, 4)?;
        let name_off = word(functab, func_off + 4, 4)? as usize;
        let names = funcname_off
            .checked_add(name_off)
            .and_then(|at| data.get(at..))
            .context("truncated .gopclntab: a function name is outside the table")?;
        let end = names.iter().position(|&b| b == 0).unwrap_or(names.len());
        let name = String::from_utf8_lossy(&names[..end]).into_owned();
        let (Some(low), Some(high)) = (text_start.checked_add(entry), text_start.checked_add(next))
        else {
            bail!("corrupt .gopclntab: function {name} is beyond the address space");
        };
        out.push(Function {
            name,
            low,
            high,
            file: None,
            line: None,
            params: Vec::new(),
            lang: Lang::Go,
            has_dwarf: false,
            trampoline: false,
        });
    }
    Ok(out)
}
