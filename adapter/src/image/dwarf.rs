//! DWARF reading for the image: units and their languages, functions with
//! their parameters and first source line, and the lookups other modules
//! build on (names, members, Go runtime type descriptors). Type DIEs are
//! turned into the type model by `resolve`.
//!
//! Units are parsed once, when the image is opened, and kept so that a type
//! DIE can be found by its `.debug_info` offset later without re-parsing.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use gimli::{AttributeValue, DebugInfoOffset, Reader as _, RunTimeEndian, UnitOffset};
use object::{Object, ObjectSection};

use super::goruntime;
use super::names::{Scope, ScopeWalk};
use super::types::Field;
use super::{Function, Lang, Param, Subprogram};

pub(super) type R = gimli::EndianArcSlice<RunTimeEndian>;

/// Go's vendor attribute carrying the offset of the type's runtime type
/// descriptor (`runtime._type`) from the start of `runtime.types`.
const DW_AT_GO_RUNTIME_TYPE: gimli::DwAt = gimli::DwAt(0x2904);

pub(super) struct Dwarf {
    pub(super) dwarf: gimli::Dwarf<R>,
    /// Parsed units, sorted by their offset in `.debug_info`.
    pub(super) units: Vec<(u64, gimli::Unit<R>)>,
    /// Each unit's source language (same order as `units`).
    pub(super) langs: Vec<Lang>,
    /// Each C++ or Rust unit's named scopes, which qualify the names of
    /// its functions and types (same order as `units`; filled by
    /// [`Dwarf::functions`]).
    pub(super) scopes: Vec<Vec<Scope>>,
    /// Call frame information (`.debug_frame`), to find the CFA at a PC.
    pub(super) frame: Option<gimli::DebugFrame<R>>,
    /// The same from `.eh_frame` (C, C++ and Rust binaries carry it there).
    pub(super) eh_frame: Option<(gimli::EhFrame<R>, gimli::BaseAddresses)>,
    /// Where Go's `runtime.funcval` keeps a closure's code address (set
    /// when the image reads the runtime's layouts), for func types.
    pub(super) func_code: Option<u32>,
}

impl Dwarf {
    /// Loads the DWARF sections (compressed ones included) of `debug`
    /// (`file` itself, or its separate debug file), and `file`'s
    /// `.eh_frame`; `None` if `debug` has no `.debug_info`.
    pub(super) fn load(file: &object::File, debug: &object::File) -> Result<Option<Dwarf>> {
        let find = |name: &str| {
            debug.section_by_name(name).or_else(|| {
                let z = name
                    .strip_prefix(".debug_")
                    .map(|rest| format!(".zdebug_{rest}"))?;
                debug.section_by_name(&z)
            })
        };
        if find(".debug_info").is_none() {
            return Ok(None);
        }
        let load = |id: gimli::SectionId| -> Result<R> {
            let bytes: Vec<u8> = match find(id.name()) {
                Some(section) => section
                    .uncompressed_data()
                    .with_context(|| format!("decompressing {}", id.name()))?
                    .into_owned(),
                None => Vec::new(),
            };
            Ok(R::new(Arc::from(bytes), RunTimeEndian::Little))
        };
        let dwarf = gimli::Dwarf::load(load)?;
        let mut units = Vec::new();
        let mut langs = Vec::new();
        let mut headers = dwarf.units();
        while let Some(header) = headers.next()? {
            let offset = match header.offset().as_debug_info_offset() {
                Some(o) => o.0 as u64,
                None => continue,
            };
            let unit = dwarf.unit(header)?;
            langs.push(unit_lang(&unit)?);
            units.push((offset, unit));
        }
        let frame = match find(".debug_frame") {
            Some(_) => {
                let mut f = gimli::DebugFrame::from(load(gimli::SectionId::DebugFrame)?);
                f.set_address_size(8);
                Some(f)
            }
            None => None,
        };
        let eh_frame = match file.section_by_name(".eh_frame") {
            Some(section) => {
                let bytes = section
                    .uncompressed_data()
                    .context("reading .eh_frame")?
                    .into_owned();
                let mut f = gimli::EhFrame::from(R::new(Arc::from(bytes), RunTimeEndian::Little));
                f.set_address_size(8);
                let mut bases = gimli::BaseAddresses::default().set_eh_frame(section.address());
                if let Some(text) = file.section_by_name(".text") {
                    bases = bases.set_text(text.address());
                }
                Some((f, bases))
            }
            None => None,
        };
        let scopes = vec![Vec::new(); units.len()];
        Ok(Some(Dwarf {
            dwarf,
            units,
            langs,
            scopes,
            frame,
            eh_frame,
            func_code: None,
        }))
    }

    /// Every function with code, with its parameters and first line, and
    /// where its DIE is. Records each C++ and Rust unit's scopes on the way.
    pub(super) fn functions(&mut self) -> Result<Vec<(Function, Subprogram)>> {
        let mut out: Vec<(Function, Subprogram)> = Vec::new();
        let mut all_scopes = Vec::with_capacity(self.units.len());
        for (u, (_, unit)) in self.units.iter().enumerate() {
            let lang = self.langs[u];
            let scoped = matches!(lang, Lang::Cpp | Lang::Rust);
            let first = out.len();
            let mut walk = ScopeWalk::default();
            // Functions of this unit whose names are read once its scopes
            // are known: (index in `out`, DIE).
            let mut pending: Vec<(usize, UnitOffset)> = Vec::new();
            // Each parameter's place in declaration order: the offset of
            // the DIE that declares it (a clone's parameters come in
            // another order than the source's).
            let mut order: Vec<Vec<usize>> = Vec::new();
            let mut entries = unit.entries();
            let mut depth = 0isize;
            // (index in `out`, depth) of the subprogram being read.
            let mut current: Option<(usize, isize)> = None;
            while let Some((delta, entry)) = entries.next_dfs()? {
                depth += delta;
                if scoped {
                    walk.visit(self, unit, entry, depth)?;
                }
                if let Some((_, d)) = current {
                    if depth <= d {
                        current = None;
                    }
                }
                match entry.tag() {
                    gimli::DW_TAG_subprogram => {
                        let Some((low, high)) = self.code_range(unit, entry)? else {
                            continue;
                        };
                        // A wrapper: marked as one, or declared in Go's
                        // `<autogenerated>` file (ABI wrappers, named as
                        // the function they forward to, have no line rows).
                        let trampoline = entry.attr_value(gimli::DW_AT_trampoline)?.is_some()
                            || self.declared_in_autogenerated(unit, entry)?;
                        let nocall = matches!(
                            entry.attr_value(gimli::DW_AT_calling_convention)?,
                            Some(AttributeValue::CallingConvention(gimli::DW_CC_nocall))
                        );
                        out.push((
                            Function {
                                name: String::new(),
                                low,
                                high,
                                file: None,
                                line: None,
                                params: Vec::new(),
                                lang,
                                has_dwarf: true,
                                trampoline,
                            },
                            Subprogram {
                                die: unit_ref_to_global(unit, entry.offset()),
                                args_by_abi: !nocall,
                                results_by_abi: !nocall,
                            },
                        ));
                        order.push(Vec::new());
                        let idx = out.len() - 1;
                        pending.push((idx, entry.offset()));
                        current = Some((idx, depth));
                        // C and Rust declare the result as the subprogram's type.
                        if lang != Lang::Go {
                            if let Some(ty) = self.type_ref(unit, entry, true)? {
                                out[idx].0.params.push(Param {
                                    name: String::new(),
                                    type_ref: Some(ty),
                                    is_result: true,
                                    dictionary: false,
                                    die: None,
                                });
                                order[idx - first].push(0);
                            }
                        }
                    }
                    gimli::DW_TAG_formal_parameter => {
                        let Some((idx, d)) = current else { continue };
                        if depth != d + 1 {
                            continue;
                        }
                        let origin = match lang {
                            Lang::Go => None,
                            _ => match entry.attr_value(gimli::DW_AT_abstract_origin)? {
                                Some(AttributeValue::UnitRef(o)) => Some(unit.entry(o)?),
                                _ => None,
                            },
                        };
                        let described = origin.as_ref().unwrap_or(entry);
                        let name = self
                            .name(unit, described, gimli::DW_AT_name)?
                            .unwrap_or_default();
                        let type_ref = self.type_ref(unit, described, false)?;
                        let is_result = matches!(
                            entry.attr_value(gimli::DW_AT_variable_parameter)?,
                            Some(AttributeValue::Flag(true))
                        ) || matches!(
                            entry.attr_value(gimli::DW_AT_variable_parameter)?,
                            Some(AttributeValue::Data1(1))
                        );
                        // Go 1.18 to 1.26 list the results of some
                        // functions (those with a `defer`) twice
                        // (golang/go#61357): a Go parameter's name is
                        // unique but for `_`, so a repeated one is that
                        // bug, not a value the ABI assigns a place to.
                        let repeated = out[idx].0.params.iter().any(|p| p.name == name);
                        if lang == Lang::Go && repeated && !name.is_empty() && name != "_" {
                            continue;
                        }
                        let dictionary = lang == Lang::Go && name == goruntime::DICTIONARY;
                        out[idx].0.params.push(Param {
                            name,
                            type_ref,
                            is_result,
                            dictionary,
                            die: Some(unit_ref_to_global(unit, entry.offset())),
                        });
                        order[idx - first].push(described.offset().0);
                    }
                    _ => {}
                }
            }
            for (idx, die) in pending {
                if let Some(name) = self.function_name(unit, lang, &walk.scopes, die)? {
                    out[idx].0.name = name;
                }
                // A clone lists its parameters in its own order: show
                // them in the source's.
                let keys = &order[idx - first];
                if keys.windows(2).any(|w| w[0] > w[1]) {
                    let params = std::mem::take(&mut out[idx].0.params);
                    let mut keyed: Vec<(usize, Param)> = keys.iter().copied().zip(params).collect();
                    keyed.sort_by_key(|(k, _)| *k);
                    out[idx].0.params = keyed.into_iter().map(|(_, p)| p).collect();
                }
            }
            all_scopes.push(walk.scopes);
            let mut funcs: Vec<Function> = out[first..].iter().map(|(f, _)| f.clone()).collect();
            self.first_lines(unit, lang, &mut funcs)?;
            for (slot, f) in out[first..].iter_mut().zip(funcs) {
                slot.0 = f;
            }
        }
        self.scopes = all_scopes;
        out.retain(|(f, _)| !f.name.is_empty());
        Ok(out)
    }

    /// Whether `entry` is declared in Go's `<autogenerated>` pseudo-file.
    fn declared_in_autogenerated(
        &self,
        unit: &gimli::Unit<R>,
        entry: &gimli::DebuggingInformationEntry<R>,
    ) -> Result<bool> {
        let (Some(AttributeValue::FileIndex(i)), Some(program)) = (
            entry.attr_value(gimli::DW_AT_decl_file)?,
            unit.line_program.as_ref(),
        ) else {
            return Ok(false);
        };
        let header = program.header();
        let Some(file) = header.file(i) else {
            return Ok(false);
        };
        let name = self.dwarf.attr_string(unit, file.path_name())?;
        Ok(name.to_string_lossy()?.ends_with("<autogenerated>"))
    }

    /// The code range `[low, high)` of a subprogram DIE with code: from
    /// `DW_AT_low_pc`/`DW_AT_high_pc`, or the first of its `DW_AT_ranges`
    /// (GCC splits a function's cold part off into a second range; the
    /// first holds its entry).
    fn code_range(
        &self,
        unit: &gimli::Unit<R>,
        entry: &gimli::DebuggingInformationEntry<R>,
    ) -> Result<Option<(u64, u64)>> {
        if let Some(low) = self.low_pc(unit, entry)? {
            let high = match entry.attr_value(gimli::DW_AT_high_pc)? {
                Some(AttributeValue::Addr(a)) => a,
                // An offset past the address space is a corrupt entry:
                // no range, as for an unknown form.
                Some(AttributeValue::Udata(n)) => match low.checked_add(n) {
                    Some(high) => high,
                    None => return Ok(None),
                },
                Some(v) => match v.udata_value().and_then(|n| low.checked_add(n)) {
                    Some(high) => high,
                    None => return Ok(None),
                },
                None => return Ok(None),
            };
            return Ok(Some((low, high)));
        }
        if entry.attr_value(gimli::DW_AT_ranges)?.is_none() {
            return Ok(None);
        }
        let mut ranges = self.dwarf.die_ranges(unit, entry)?;
        while let Some(r) = ranges.next()? {
            if r.begin != 0 && r.end > r.begin {
                return Ok(Some((r.begin, r.end)));
            }
        }
        Ok(None)
    }

    /// The `.debug_info` offset of the type an entry's `DW_AT_type` names;
    /// with `follow`, also through the declaration or abstract function
    /// the entry completes (a clone's result type is on its origin).
    pub(super) fn type_ref(
        &self,
        unit: &gimli::Unit<R>,
        entry: &gimli::DebuggingInformationEntry<R>,
        follow: bool,
    ) -> Result<Option<u64>> {
        let mut at = entry.clone();
        for _ in 0..4 {
            match at.attr_value(gimli::DW_AT_type)? {
                Some(AttributeValue::UnitRef(o)) => return Ok(Some(unit_ref_to_global(unit, o))),
                Some(AttributeValue::DebugInfoRef(o)) => return Ok(Some(o.0 as u64)),
                _ => {}
            }
            if !follow {
                break;
            }
            let next = match at.attr_value(gimli::DW_AT_specification)? {
                Some(v) => Some(v),
                None => at.attr_value(gimli::DW_AT_abstract_origin)?,
            };
            match next {
                Some(AttributeValue::UnitRef(o)) => at = unit.entry(o)?,
                _ => break,
            }
        }
        Ok(None)
    }

    /// Fills each function's file and line from the row at its low address.
    fn first_lines(&self, unit: &gimli::Unit<R>, lang: Lang, funcs: &mut [Function]) -> Result<()> {
        if funcs.is_empty() {
            return Ok(());
        }
        let Some(program) = unit.line_program.clone() else {
            return Ok(());
        };
        let by_low: HashMap<u64, usize> =
            funcs.iter().enumerate().map(|(i, f)| (f.low, i)).collect();
        let mut rows = program.rows();
        while let Some((header, row)) = rows.next_row()? {
            // A sequence's end row has the address after its last
            // instruction, which may be the next function's first.
            if row.end_sequence() {
                continue;
            }
            let Some(&i) = by_low.get(&row.address()) else {
                continue;
            };
            if funcs[i].line.is_some() {
                continue;
            }
            let Some(line) = row.line() else { continue };
            funcs[i].line = Some(line.get());
            if let Some(file) = row.file(header) {
                funcs[i].file = Some(self.file_path(unit, lang, header, file)?);
            }
        }
        Ok(())
    }

    /// A line-table file's path: its directory's and its name joined,
    /// and for C, C++ and Rust a path still relative made absolute with
    /// the unit's compilation directory (rustc names its directories
    /// relative to where it ran).
    pub(super) fn file_path(
        &self,
        unit: &gimli::Unit<R>,
        lang: Lang,
        header: &gimli::LineProgramHeader<R>,
        file: &gimli::FileEntry<R>,
    ) -> Result<String> {
        let name = self
            .dwarf
            .attr_string(unit, file.path_name())?
            .to_string_lossy()?
            .into_owned();
        if name.starts_with('/') {
            return Ok(name);
        }
        let mut path = name.clone();
        if let Some(dir) = file.directory(header) {
            let dir = self
                .dwarf
                .attr_string(unit, dir)?
                .to_string_lossy()?
                .into_owned();
            if !dir.is_empty() {
                path = format!("{dir}/{name}");
            }
        }
        if lang != Lang::Go && !path.starts_with('/') && !name.starts_with('<') {
            if let Some(comp) = &unit.comp_dir {
                let comp = comp.to_string_lossy()?;
                if comp.starts_with('/') {
                    path = format!("{}/{path}", comp.trim_end_matches('/'));
                }
            }
        }
        Ok(path)
    }

    fn low_pc(
        &self,
        unit: &gimli::Unit<R>,
        entry: &gimli::DebuggingInformationEntry<R>,
    ) -> Result<Option<u64>> {
        Ok(match entry.attr_value(gimli::DW_AT_low_pc)? {
            Some(v) => self.dwarf.attr_address(unit, v)?.filter(|&a| a != 0),
            None => None,
        })
    }

    pub(super) fn name(
        &self,
        unit: &gimli::Unit<R>,
        entry: &gimli::DebuggingInformationEntry<R>,
        at: gimli::DwAt,
    ) -> Result<Option<String>> {
        Ok(match entry.attr_value(at)? {
            Some(v) => Some(
                self.dwarf
                    .attr_string(unit, v)?
                    .to_string_lossy()?
                    .into_owned(),
            ),
            None => None,
        })
    }

    /// Every type DIE that names its runtime type descriptor, keyed by the
    /// descriptor's offset from `runtime.types` (DIE offsets are global).
    /// Where several DIEs name the same descriptor, the first one wins.
    pub(super) fn runtime_types(&self) -> Result<HashMap<u64, u64>> {
        let mut out = HashMap::new();
        for (_, unit) in &self.units {
            let mut entries = unit.entries();
            while let Some((_, entry)) = entries.next_dfs()? {
                let Some(v) = entry.attr_value(DW_AT_GO_RUNTIME_TYPE)? else {
                    continue;
                };
                let off = match v {
                    AttributeValue::Addr(a) => a,
                    other => match other.udata_value() {
                        Some(n) => n,
                        None => continue,
                    },
                };
                // 0 marks a type without a descriptor of its own.
                if off == 0 {
                    continue;
                }
                out.entry(off)
                    .or_insert_with(|| unit_ref_to_global(unit, entry.offset()));
            }
        }
        Ok(out)
    }

    /// Every Rust vtable's address (`<T as Trait>::{vtable}`, a variable
    /// at a fixed address) mapped to the DIE of the type `T` it is for
    /// (its type's `DW_AT_containing_type`).
    pub(super) fn vtable_types(&self) -> Result<HashMap<u64, u64>> {
        let mut out = HashMap::new();
        for (u, (_, unit)) in self.units.iter().enumerate() {
            if self.langs[u] != Lang::Rust {
                continue;
            }
            let mut entries = unit.entries();
            while let Some((_, entry)) = entries.next_dfs()? {
                if entry.tag() != gimli::DW_TAG_variable {
                    continue;
                }
                let Some(name) = self.name(unit, entry, gimli::DW_AT_name)? else {
                    continue;
                };
                if !name.ends_with("::{vtable}") {
                    continue;
                }
                let Some(AttributeValue::Exprloc(expr)) =
                    entry.attr_value(gimli::DW_AT_location)?
                else {
                    continue;
                };
                let mut ops = expr.operations(unit.encoding());
                let Ok(Some(gimli::Operation::Address { address })) = ops.next() else {
                    continue;
                };
                let Some(AttributeValue::UnitRef(vt)) = entry.attr_value(gimli::DW_AT_type)? else {
                    continue;
                };
                let target = match unit.entry(vt)?.attr_value(gimli::DW_AT_containing_type)? {
                    Some(AttributeValue::UnitRef(o)) => unit_ref_to_global(unit, o),
                    Some(AttributeValue::DebugInfoRef(o)) => o.0 as u64,
                    _ => continue,
                };
                out.insert(address, target);
            }
        }
        Ok(out)
    }

    /// The members (name, byte offset) of the structs named in `wanted`,
    /// for those found; the DIEs are read until every one is found.
    pub(super) fn struct_members(
        &self,
        wanted: &[&str],
    ) -> Result<HashMap<String, Vec<(String, u64)>>> {
        let mut found: HashMap<String, Vec<(String, u64)>> = HashMap::new();
        for (_, unit) in &self.units {
            let mut entries = unit.entries();
            let mut depth = 0isize;
            // The struct being read and its depth.
            let mut inside: Option<(String, isize)> = None;
            while let Some((delta, entry)) = entries.next_dfs()? {
                depth += delta;
                if let Some((name, d)) = &inside {
                    if depth <= *d {
                        inside = None;
                        if found.len() == wanted.len() {
                            return Ok(found);
                        }
                    } else if depth == d + 1 && entry.tag() == gimli::DW_TAG_member {
                        let member = self.name(unit, entry, gimli::DW_AT_name)?;
                        let offset = entry
                            .attr_value(gimli::DW_AT_data_member_location)?
                            .and_then(|v| v.udata_value());
                        if let (Some(member), Some(offset)) = (member, offset) {
                            found
                                .entry(name.clone())
                                .or_default()
                                .push((member, offset));
                        }
                        continue;
                    }
                }
                if inside.is_none() && entry.tag() == gimli::DW_TAG_structure_type {
                    if let Some(name) = self.name(unit, entry, gimli::DW_AT_name)? {
                        if wanted.contains(&name.as_str()) && !found.contains_key(&name) {
                            inside = Some((name, depth));
                        }
                    }
                }
            }
        }
        Ok(found)
    }

    /// The index in `units` of the unit holding DIE `die`.
    pub(super) fn unit_index(&self, die: u64) -> Result<usize> {
        let i = self.units.partition_point(|(o, _)| *o <= die);
        if i == 0 {
            return Err(anyhow!("no DWARF unit holds DIE {die:#x}"));
        }
        Ok(i - 1)
    }

    /// The unit holding DIE `die` and the DIE's offset in it.
    pub(super) fn locate(&self, die: u64) -> Result<(usize, UnitOffset)> {
        let u = self.unit_index(die)?;
        let base = self.units[u].0;
        Ok((u, UnitOffset((die - base) as usize)))
    }
}

/// `runtime.eface` (`_type`, `data`) as opposed to `runtime.iface` (`tab`, `data`).
pub(super) fn is_eface(fields: &[Field]) -> bool {
    fields.first().is_some_and(|f| f.name == "_type")
}

/// The language a unit's `DW_AT_language` names.
fn unit_lang(unit: &gimli::Unit<R>) -> Result<Lang> {
    let mut entries = unit.entries();
    let Some((_, root)) = entries.next_dfs()? else {
        return Ok(Lang::Other);
    };
    let Some(AttributeValue::Language(l)) = root.attr_value(gimli::DW_AT_language)? else {
        return Ok(Lang::Other);
    };
    Ok(match l {
        gimli::DW_LANG_Go => Lang::Go,
        gimli::DW_LANG_Rust => Lang::Rust,
        gimli::DW_LANG_C
        | gimli::DW_LANG_C89
        | gimli::DW_LANG_C99
        | gimli::DW_LANG_C11
        | gimli::DW_LANG_C17 => Lang::C,
        gimli::DW_LANG_C_plus_plus
        | gimli::DW_LANG_C_plus_plus_03
        | gimli::DW_LANG_C_plus_plus_11
        | gimli::DW_LANG_C_plus_plus_14
        | gimli::DW_LANG_C_plus_plus_17
        | gimli::DW_LANG_C_plus_plus_20 => Lang::Cpp,
        _ => Lang::Other,
    })
}

pub(super) fn unit_ref_to_global(unit: &gimli::Unit<R>, o: UnitOffset) -> u64 {
    match o.to_debug_info_offset(&unit.header) {
        Some(DebugInfoOffset(g)) => g as u64,
        None => 0,
    }
}
