//! One executable's static facts: functions, their parameters and types,
//! source positions, instruction bytes, and (for Go) the runtime's layouts
//! (`goruntime`).
//!
//! An [`Image`] is built once per ELF file and is read-only afterwards. It
//! indexes functions from DWARF when present, else from the ELF symbol table,
//! else (stripped Go binaries) from `.gopclntab`. Types are resolved lazily
//! into a caller-owned [`TypeTable`] by [`Image::resolve_type`]; a Go
//! interface's dynamic type is found by its runtime type descriptor's
//! address with [`Image::runtime_type_die`]. Turning these
//! facts into probes is the plan's job; reading a live process is a backend's.

mod debuglink;
mod dwarf;
pub mod goruntime;
pub mod names;
mod pclntab;
mod resolve;
pub mod scope;
mod shapes;
pub mod types;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use object::{Object, ObjectKind, ObjectSegment, ObjectSymbol, SymbolKind};

pub use scope::{AtEntry, Place, PlacePiece, Variable, OPTIMIZED_OUT};
pub use types::{Discr, Field, Type, TypeId, TypeKind, TypeTable, Variant};

/// Index of a function in [`Image::functions`].
pub type FuncId = usize;

/// The source language of a function, which picks the calling convention
/// and the notation values are shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Lang {
    Go,
    C,
    Cpp,
    Rust,
    Other,
}

/// A parameter or (Go) named result.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    /// Offset of the type's DIE in `.debug_info`.
    pub type_ref: Option<u64>,
    /// Go result parameter (`DW_AT_variable_parameter`).
    pub is_result: bool,
    /// The dictionary of a Go generic function's shape instantiation
    /// (`.dict`, a pointer to the type arguments' runtime descriptors): an
    /// argument the ABI assigns like any other, never shown.
    pub dictionary: bool,
    /// Offset of the parameter's DIE in `.debug_info` (where it lives).
    pub die: Option<u64>,
}

/// Where a function's DIE is, and whether its calls follow its language's
/// calling convention: a compiler that changed a function's signature
/// (LLVM marks it `DW_CC_nocall`; GCC names such clones `.isra`, `.part`,
/// `.constprop`) leaves only DWARF to say where its arguments are, and
/// its result may be gone.
#[derive(Debug, Clone, Copy)]
pub struct Subprogram {
    /// Offset of the subprogram DIE in `.debug_info`.
    pub die: u64,
    /// Arguments are where the convention puts them when DWARF names a
    /// place valid only after the prologue.
    pub args_by_abi: bool,
    /// Results are where the convention puts them.
    pub results_by_abi: bool,
}

#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub low: u64,
    pub high: u64,
    /// Source file and line of the function's first instruction.
    pub file: Option<String>,
    pub line: Option<u64>,
    pub params: Vec<Param>,
    pub lang: Lang,
    /// Whether DWARF described this function (else arguments are unknown).
    pub has_dwarf: bool,
    /// A wrapper that only forwards to another function (DWARF's
    /// `DW_AT_trampoline`: Go's ABI and pointer-receiver wrappers, `defer`
    /// and `go` wrappers): tracing it would report that call twice.
    pub trampoline: bool,
}

impl Function {
    pub fn args(&self) -> impl Iterator<Item = &Param> {
        self.params.iter().filter(|p| !p.is_result)
    }
    pub fn results(&self) -> impl Iterator<Item = &Param> {
        self.params.iter().filter(|p| p.is_result)
    }
}

/// A loaded segment, to map virtual addresses to file offsets.
#[derive(Debug, Clone, Copy)]
struct Segment {
    vaddr: u64,
    file_offset: u64,
    file_size: u64,
}

pub struct Image {
    pub path: PathBuf,
    /// Sorted by `low`.
    pub functions: Vec<Function>,
    /// Position-independent (ET_DYN): addresses need the load bias.
    pub pie: bool,
    pub has_dwarf: bool,
    pub is_go: bool,
    /// Where Go's `runtime.g` keeps the goroutine id and `stack.hi`.
    pub g: Option<goruntime::GLayout>,
    /// Address of `runtime.types`, which runtime type descriptors are
    /// numbered from (Go).
    types_base: Option<u64>,
    /// Runtime type descriptor offset -> type DIE, built on first use.
    runtime_types: std::sync::OnceLock<HashMap<u64, u64>>,
    /// Rust vtable address -> the type DIE it is for, built on first use.
    vtable_types: std::sync::OnceLock<HashMap<u64, u64>>,
    /// The DWARF subprogram of each function with DWARF, by `low`.
    subprograms: HashMap<u64, Subprogram>,
    data: Vec<u8>,
    segments: Vec<Segment>,
    dwarf: Option<dwarf::Dwarf>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("path", &self.path)
            .field("functions", &self.functions.len())
            .finish()
    }
}

impl Image {
    /// Reads and indexes an ELF executable.
    pub fn open(path: &Path) -> Result<Image> {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Image::from_bytes(path, data)
    }

    /// Indexes the ELF executable `data`, read from `path` (which only
    /// names it in messages and in the result).
    pub fn from_bytes(path: &Path, data: Vec<u8>) -> Result<Image> {
        if !data.starts_with(b"\x7fELF") {
            bail!("{} is not an ELF executable", path.display());
        }
        let file = object::File::parse(&*data)
            .with_context(|| format!("{} is not a valid ELF file", path.display()))?;
        if file.architecture() != object::Architecture::X86_64 {
            bail!(
                "{} is built for {:?}; logprobe traces x86-64 programs only",
                path.display(),
                file.architecture()
            );
        }
        let pie = file.kind() == ObjectKind::Dynamic;
        let segments: Vec<Segment> = file
            .segments()
            .map(|s| {
                let (off, size) = s.file_range();
                Segment {
                    vaddr: s.address(),
                    file_offset: off,
                    file_size: size,
                }
            })
            .collect();
        let is_go = file.section_by_name(".gopclntab").is_some()
            || file.section_by_name(".go.buildinfo").is_some();

        // Debug information stripped into a file of its own (`objcopy
        // --only-keep-debug`, distributions' -dbg packages) is read from
        // there; the code, symbols and `.eh_frame` stay the binary's.
        let has_debug_info = file.section_by_name(".debug_info").is_some()
            || file.section_by_name(".zdebug_info").is_some();
        let separate = match has_debug_info {
            true => None,
            false => debuglink::find(path, &file),
        };
        let debug = match &separate {
            Some((at, data)) => Some(
                object::File::parse(&**data)
                    .with_context(|| format!("{} is not a valid ELF file", at.display()))?,
            ),
            None => None,
        };
        let mut dwarf =
            dwarf::Dwarf::load(&file, debug.as_ref().unwrap_or(&file)).with_context(|| {
                match &separate {
                    Some((at, _)) => {
                        format!("reading DWARF of {} from {}", path.display(), at.display())
                    }
                    None => format!("reading DWARF of {}", path.display()),
                }
            })?;
        let described = match &mut dwarf {
            Some(d) => d.functions()?,
            None => Vec::new(),
        };
        let mut subprograms: HashMap<u64, Subprogram> = HashMap::new();
        let mut functions = Vec::with_capacity(described.len());
        for (f, mut sub) in described {
            if f.lang != Lang::Go {
                subprograms
                    .entry(f.low)
                    .and_modify(|s| {
                        // Two DIEs at one address: trust the convention
                        // only if both do.
                        s.args_by_abi &= sub.args_by_abi;
                        s.results_by_abi &= sub.results_by_abi;
                        sub = *s;
                    })
                    .or_insert(sub);
            }
            functions.push(f);
        }
        if !is_go {
            clones(&file, &mut subprograms);
        }
        let has_dwarf = !functions.is_empty();
        if functions.is_empty() {
            functions = symbol_functions(&file, is_go);
        }
        if functions.is_empty() && is_go {
            functions = pclntab::functions(&file).context("reading .gopclntab")?;
        }
        functions.sort_by_key(|f| f.low);
        functions.dedup_by(|a, b| a.low == b.low && a.name == b.name);
        let go_version = goruntime::go_version(&file);
        if let Some(version) = go_version.filter(|_| has_dwarf) {
            for f in &mut functions {
                goruntime::add_dictionary(f, version);
            }
        }

        let runtime = match is_go {
            true => goruntime::runtime_layouts(dwarf.as_ref(), &file)?,
            false => Default::default(),
        };
        if let Some(d) = &mut dwarf {
            d.func_code = runtime.func_code;
        }
        let g = runtime.g;

        let types_base = if is_go {
            file.symbols()
                .find(|s| s.name() == Ok("runtime.types"))
                .map(|s| s.address())
        } else {
            None
        };

        Ok(Image {
            types_base,
            runtime_types: std::sync::OnceLock::new(),
            vtable_types: std::sync::OnceLock::new(),
            subprograms,
            path: path.to_path_buf(),
            functions,
            pie,
            has_dwarf,
            is_go,
            g,
            data,
            segments,
            dwarf,
        })
    }

    /// The file offset of a virtual address, for uprobes.
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.file_size)
            .and_then(|s| (vaddr - s.vaddr).checked_add(s.file_offset))
    }

    /// The bytes of a function's code.
    pub fn code(&self, func: &Function) -> Option<&[u8]> {
        let start = usize::try_from(self.file_offset(func.low)?).ok()?;
        let len = usize::try_from(func.high.checked_sub(func.low)?).ok()?;
        self.data.get(start..start.checked_add(len)?)
    }

    /// The whole ELF file.
    pub fn elf_data(&self) -> &[u8] {
        &self.data
    }

    /// `len` bytes of the file at `offset`.
    pub fn bytes(&self, offset: usize, len: usize) -> Option<&[u8]> {
        self.data.get(offset..offset.checked_add(len)?)
    }

    /// Resolves a type DIE into `table`, once per DIE.
    pub fn resolve_type(
        &self,
        table: &mut TypeTable,
        cache: &mut HashMap<u64, TypeId>,
        die: u64,
    ) -> Result<TypeId> {
        match &self.dwarf {
            Some(d) => d.resolve_type(table, cache, die),
            None => bail!("no DWARF"),
        }
    }

    /// The DWARF subprogram of function `f` (C, C++, Rust).
    pub fn subprogram(&self, f: &Function) -> Option<Subprogram> {
        self.subprograms.get(&f.low).copied()
    }

    /// Where each argument of `f` (of `sizes` bytes, when known) is at
    /// its first instruction, as DWARF says (see [`AtEntry`]); `None`
    /// without DWARF.
    pub fn entry_places(&self, f: &Function, sizes: &[Option<u64>]) -> Option<Vec<AtEntry>> {
        let d = self.dwarf.as_ref()?;
        let sub = self.subprogram(f)?;
        let params: Vec<(Option<u64>, Option<u64>)> = f
            .args()
            .zip(sizes.iter().copied().chain(std::iter::repeat(None)))
            .map(|(p, size)| (p.die, size))
            .collect();
        d.entry_places(sub.die, &params, f.low).ok()
    }

    /// The type DIE of the Go runtime type descriptor at `addr` (an
    /// interface's dynamic type), as `resolve_type` takes it. `None` for a
    /// descriptor DWARF does not describe. Addresses are link-time ones:
    /// a position-independent executable's load bias must be removed
    /// first (`Recipe::pc` tells it).
    pub fn runtime_type_die(&self, addr: u64) -> Option<u64> {
        let base = self.types_base?;
        let dwarf = self.dwarf.as_ref()?;
        let index = self.runtime_types.get_or_init(|| {
            // An unreadable DIE tree leaves the index empty: dynamic types
            // are then shown by address, which is the best left to do.
            dwarf.runtime_types().unwrap_or_default()
        });
        index.get(&addr.checked_sub(base)?).copied()
    }

    /// The type DIE of the value a Rust trait object whose vtable is at
    /// `addr` points to (a link-time address, as for `runtime_type_die`).
    pub fn vtable_type_die(&self, addr: u64) -> Option<u64> {
        let dwarf = self.dwarf.as_ref()?;
        let index = self.vtable_types.get_or_init(|| {
            // An unreadable DIE tree leaves the index empty: trait
            // objects are then shown by address.
            dwarf.vtable_types().unwrap_or_default()
        });
        index.get(&addr).copied()
    }

    /// Functions whose names match `re`.
    pub fn matching(&self, re: &regex::Regex) -> Vec<FuncId> {
        (0..self.functions.len())
            .filter(|&i| re.is_match(&self.functions[i].name))
            .collect()
    }

    /// The first statement address of `file:line` in each function that
    /// has code for that line (an inlined copy counts as its own place).
    pub fn line_addresses(&self, file: &str, line: u64) -> Result<Vec<(FuncId, u64)>> {
        let Some(d) = &self.dwarf else {
            bail!("{} has no DWARF line table", self.path.display());
        };
        let mut out: Vec<(FuncId, u64)> = Vec::new();
        for addr in d.statement_addresses(file, line)? {
            let Some(f) = self.function_at(addr) else {
                continue;
            };
            // Addresses come sorted, so the first one per function wins.
            if !out.iter().any(|(g, _)| *g == f) {
                out.push((f, addr));
            }
        }
        Ok(out)
    }

    /// The function whose code holds `file:line`: from the line table, or
    /// else the last function declared in that file at or before the line.
    pub fn function_around(&self, file: &str, line: u64) -> Result<Option<FuncId>> {
        if let Some((f, _)) = self.line_addresses(file, line)?.first() {
            return Ok(Some(*f));
        }
        Ok(self
            .functions
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                f.file.as_deref().is_some_and(|p| scope::same_file(p, file))
                    && f.line.is_some_and(|l| l <= line)
            })
            .max_by_key(|(_, f)| f.line)
            .map(|(i, _)| i))
    }

    /// The source line of each code address in `pcs` the line table
    /// covers (none without DWARF).
    pub fn lines_at(&self, pcs: &[u64]) -> Result<HashMap<u64, u64>> {
        let mut sorted = pcs.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        match &self.dwarf {
            Some(d) => d.lines_at(&sorted),
            None => Ok(HashMap::new()),
        }
    }

    /// Parameters and locals in scope at `pc`, outermost first.
    pub fn variables_at(&self, pc: u64) -> Result<Vec<Variable>> {
        match &self.dwarf {
            Some(d) => d.variables_at(pc),
            None => Ok(Vec::new()),
        }
    }

    /// The canonical frame address rule at `pc`: (DWARF register, offset).
    pub fn cfa_at(&self, pc: u64) -> Option<(u16, i64)> {
        self.dwarf.as_ref().and_then(|d| d.cfa_at(pc))
    }

    /// The function containing `addr`.
    pub fn function_at(&self, addr: u64) -> Option<FuncId> {
        let i = self.functions.partition_point(|f| f.low <= addr);
        (i > 0 && addr < self.functions[i - 1].high).then(|| i - 1)
    }
}

/// The functions the bytes of a `.gopclntab` section name (for the fuzzer,
/// `crate::fuzzing`).
#[doc(hidden)]
pub fn pclntab_functions(data: &[u8]) -> Result<Vec<Function>> {
    pclntab::parse(data)
}

/// Marks the functions GCC cloned with another signature: their symbol
/// ends in `.constprop.N` (arguments fixed), `.isra.N` (arguments and
/// maybe the result taken apart or dropped) or `.part.N` (the rest of a
/// partly inlined function), while DWARF names them as the original.
fn clones(file: &object::File, subprograms: &mut HashMap<u64, Subprogram>) {
    for sym in file.symbols() {
        if sym.kind() != SymbolKind::Text {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        let Some(sub) = subprograms.get_mut(&sym.address()) else {
            continue;
        };
        if name.contains(".constprop.") || name.contains(".isra.") || name.contains(".part.") {
            sub.args_by_abi = false;
        }
        if name.contains(".isra.") || name.contains(".part.") {
            sub.results_by_abi = false;
        }
    }
}

/// Functions from `.symtab`/`.dynsym` (a binary built without DWARF).
fn symbol_functions(file: &object::File, is_go: bool) -> Vec<Function> {
    let mut out = Vec::new();
    for sym in file.symbols().chain(file.dynamic_symbols()) {
        if sym.kind() != SymbolKind::Text || sym.size() == 0 || sym.address() == 0 {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        // A symbol that ends beyond the address space is corrupt.
        let Some(high) = sym.address().checked_add(sym.size()) else {
            continue;
        };
        out.push(Function {
            name: name.to_string(),
            low: sym.address(),
            high,
            file: None,
            line: None,
            params: Vec::new(),
            lang: if is_go { Lang::Go } else { Lang::Other },
            has_dwarf: false,
            trampoline: false,
        });
    }
    out
}
