//! DWARF reading for the image: functions with parameters, their first
//! source line, struct member offsets, and type resolution.
//!
//! Units are parsed once, when the image is opened, and kept so that a type
//! DIE can be found by its `.debug_info` offset later without re-parsing.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use gimli::{AttributeValue, DebugInfoOffset, Reader as _, RunTimeEndian, UnitOffset};
use object::{Object, ObjectSection};

use super::types::{Field, Type, TypeId, TypeKind, TypeTable};
use super::{Function, Lang, Param};

pub(super) type R = gimli::EndianArcSlice<RunTimeEndian>;

/// Go's vendor attribute carrying `reflect.Kind`.
const DW_AT_GO_KIND: gimli::DwAt = gimli::DwAt(0x2900);
/// Go's vendor attribute carrying the offset of the type's runtime type
/// descriptor (`runtime._type`) from the start of `runtime.types`.
const DW_AT_GO_RUNTIME_TYPE: gimli::DwAt = gimli::DwAt(0x2904);

pub(super) struct Dwarf {
    pub(super) dwarf: gimli::Dwarf<R>,
    /// Parsed units, sorted by their offset in `.debug_info`.
    pub(super) units: Vec<(u64, gimli::Unit<R>)>,
    /// Call frame information (`.debug_frame`), to find the CFA at a PC.
    pub(super) frame: Option<gimli::DebugFrame<R>>,
}

impl Dwarf {
    /// Loads the DWARF sections (compressed ones included); `None` if the
    /// file has no `.debug_info`.
    pub(super) fn load(file: &object::File) -> Result<Option<Dwarf>> {
        let find = |name: &str| {
            file.section_by_name(name).or_else(|| {
                let z = name
                    .strip_prefix(".debug_")
                    .map(|rest| format!(".zdebug_{rest}"))?;
                file.section_by_name(&z)
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
        let mut headers = dwarf.units();
        while let Some(header) = headers.next()? {
            let offset = match header.offset().as_debug_info_offset() {
                Some(o) => o.0 as u64,
                None => continue,
            };
            units.push((offset, dwarf.unit(header)?));
        }
        let frame = match find(".debug_frame") {
            Some(_) => {
                let mut f = gimli::DebugFrame::from(load(gimli::SectionId::DebugFrame)?);
                f.set_address_size(8);
                Some(f)
            }
            None => None,
        };
        Ok(Some(Dwarf {
            dwarf,
            units,
            frame,
        }))
    }

    /// Every function with code, with its parameters and first line.
    pub(super) fn functions(&self) -> Result<Vec<Function>> {
        let mut out = Vec::new();
        for (_, unit) in &self.units {
            let first = out.len();
            let mut lang = Lang::Other;
            let mut entries = unit.entries();
            let mut depth = 0isize;
            // (index in `out`, depth) of the subprogram being read.
            let mut current: Option<(usize, isize)> = None;
            while let Some((delta, entry)) = entries.next_dfs()? {
                depth += delta;
                if let Some((_, d)) = current {
                    if depth <= d {
                        current = None;
                    }
                }
                match entry.tag() {
                    gimli::DW_TAG_compile_unit => {
                        if let Some(AttributeValue::Language(l)) =
                            entry.attr_value(gimli::DW_AT_language)?
                        {
                            lang = match l {
                                gimli::DW_LANG_Go => Lang::Go,
                                gimli::DW_LANG_Rust => Lang::Rust,
                                gimli::DW_LANG_C
                                | gimli::DW_LANG_C89
                                | gimli::DW_LANG_C99
                                | gimli::DW_LANG_C11
                                | gimli::DW_LANG_C17 => Lang::C,
                                _ => Lang::Other,
                            };
                        }
                    }
                    gimli::DW_TAG_subprogram => {
                        let Some(low) = self.low_pc(unit, entry)? else {
                            continue;
                        };
                        let high = match entry.attr_value(gimli::DW_AT_high_pc)? {
                            Some(AttributeValue::Addr(a)) => a,
                            Some(AttributeValue::Udata(n)) => low + n,
                            Some(v) => match v.udata_value() {
                                Some(n) => low + n,
                                None => continue,
                            },
                            None => continue,
                        };
                        let name = match self.name(unit, entry, gimli::DW_AT_name)? {
                            Some(n) => n,
                            None => match self.name(unit, entry, gimli::DW_AT_linkage_name)? {
                                Some(n) => n,
                                None => continue,
                            },
                        };
                        out.push(Function {
                            name,
                            low,
                            high,
                            file: None,
                            line: None,
                            params: Vec::new(),
                            lang,
                            has_dwarf: true,
                        });
                        current = Some((out.len() - 1, depth));
                        // C and Rust declare the result as the subprogram's type.
                        if lang != Lang::Go {
                            let ty = match entry.attr_value(gimli::DW_AT_type)? {
                                Some(AttributeValue::UnitRef(o)) => {
                                    Some(unit_ref_to_global(unit, o))
                                }
                                Some(AttributeValue::DebugInfoRef(o)) => Some(o.0 as u64),
                                _ => None,
                            };
                            if let Some(ty) = ty {
                                let idx = out.len() - 1;
                                out[idx].params.push(Param {
                                    name: String::new(),
                                    type_ref: Some(ty),
                                    is_result: true,
                                });
                            }
                        }
                    }
                    gimli::DW_TAG_formal_parameter => {
                        let Some((idx, d)) = current else { continue };
                        if depth != d + 1 {
                            continue;
                        }
                        let name = self
                            .name(unit, entry, gimli::DW_AT_name)?
                            .unwrap_or_default();
                        let type_ref = match entry.attr_value(gimli::DW_AT_type)? {
                            Some(AttributeValue::UnitRef(o)) => Some(unit_ref_to_global(unit, o)),
                            Some(AttributeValue::DebugInfoRef(o)) => Some(o.0 as u64),
                            _ => None,
                        };
                        let is_result = matches!(
                            entry.attr_value(gimli::DW_AT_variable_parameter)?,
                            Some(AttributeValue::Flag(true))
                        ) || matches!(
                            entry.attr_value(gimli::DW_AT_variable_parameter)?,
                            Some(AttributeValue::Data1(1))
                        );
                        out[idx].params.push(Param {
                            name,
                            type_ref,
                            is_result,
                        });
                    }
                    _ => {}
                }
            }
            self.first_lines(unit, &mut out[first..])?;
        }
        Ok(out)
    }

    /// Fills each function's file and line from the row at its low address.
    fn first_lines(&self, unit: &gimli::Unit<R>, funcs: &mut [Function]) -> Result<()> {
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
            let Some(&i) = by_low.get(&row.address()) else {
                continue;
            };
            if funcs[i].line.is_some() {
                continue;
            }
            let Some(line) = row.line() else { continue };
            funcs[i].line = Some(line.get());
            if let Some(file) = row.file(header) {
                funcs[i].file = Some(self.file_path(unit, header, file)?);
            }
        }
        Ok(())
    }

    pub(super) fn file_path(
        &self,
        unit: &gimli::Unit<R>,
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
        if let Some(dir) = file.directory(header) {
            let dir = self
                .dwarf
                .attr_string(unit, dir)?
                .to_string_lossy()?
                .into_owned();
            if !dir.is_empty() {
                return Ok(format!("{dir}/{name}"));
            }
        }
        Ok(name)
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

    fn unit_of(&self, die: u64) -> Result<&gimli::Unit<R>> {
        let i = self.units.partition_point(|(o, _)| *o <= die);
        if i == 0 {
            return Err(anyhow!("no DWARF unit holds DIE {die:#x}"));
        }
        Ok(&self.units[i - 1].1)
    }

    /// Resolves the type DIE at `.debug_info` offset `die` into `table`.
    pub(super) fn resolve_type(
        &self,
        table: &mut TypeTable,
        cache: &mut HashMap<u64, TypeId>,
        die: u64,
    ) -> Result<TypeId> {
        if let Some(&id) = cache.get(&die) {
            return Ok(id);
        }
        // Reserve the slot first so that self-referential types terminate.
        let id = table.push(Type {
            name: String::from("?"),
            size: 0,
            kind: TypeKind::Unsupported,
        });
        cache.insert(die, id);
        let ty = self
            .read_type(table, cache, die)
            .with_context(|| format!("reading type DIE {die:#x}"))?;
        table.set(id, ty);
        Ok(id)
    }

    fn read_type(
        &self,
        table: &mut TypeTable,
        cache: &mut HashMap<u64, TypeId>,
        die: u64,
    ) -> Result<Type> {
        let unit = self.unit_of(die)?;
        let base = unit
            .header
            .offset()
            .as_debug_info_offset()
            .ok_or_else(|| anyhow!("type unit"))?
            .0 as u64;
        let local = UnitOffset((die - base) as usize);
        let entry = unit.entry(local)?;
        let name = self
            .name(unit, &entry, gimli::DW_AT_name)?
            .unwrap_or_default();
        let size = entry
            .attr_value(gimli::DW_AT_byte_size)?
            .and_then(|v| v.udata_value())
            .unwrap_or(0);
        let go_kind = entry
            .attr_value(DW_AT_GO_KIND)?
            .and_then(|v| v.udata_value());
        let inner = match entry.attr_value(gimli::DW_AT_type)? {
            Some(AttributeValue::UnitRef(o)) => Some(unit_ref_to_global(unit, o)),
            Some(AttributeValue::DebugInfoRef(DebugInfoOffset(o))) => Some(o as u64),
            _ => None,
        };
        let resolve_inner =
            |table: &mut TypeTable, cache: &mut HashMap<u64, TypeId>| -> Result<Option<TypeId>> {
                match inner {
                    Some(o) => Ok(Some(self.resolve_type(table, cache, o)?)),
                    None => Ok(None),
                }
            };
        let ty = match entry.tag() {
            gimli::DW_TAG_base_type => {
                let enc = match entry.attr_value(gimli::DW_AT_encoding)? {
                    Some(AttributeValue::Encoding(e)) => e,
                    _ => gimli::DW_ATE_signed,
                };
                let kind = match enc {
                    gimli::DW_ATE_boolean => TypeKind::Bool,
                    gimli::DW_ATE_float => TypeKind::Float,
                    gimli::DW_ATE_complex_float => TypeKind::Complex,
                    gimli::DW_ATE_signed | gimli::DW_ATE_signed_char => TypeKind::Int,
                    _ => TypeKind::Uint,
                };
                Type { name, size, kind }
            }
            gimli::DW_TAG_pointer_type
            | gimli::DW_TAG_reference_type
            | gimli::DW_TAG_rvalue_reference_type => {
                let kind = if go_kind == Some(26) {
                    TypeKind::UnsafePointer
                } else {
                    TypeKind::Pointer {
                        pointee: resolve_inner(table, cache)?,
                    }
                };
                let name = if name.is_empty() {
                    let pointee = inner.and_then(|_| cache.get(&inner.unwrap_or(0)).copied());
                    match pointee {
                        Some(p) => format!("{} *", table.get(p).name),
                        None => String::from("void *"),
                    }
                } else {
                    name
                };
                Type {
                    name,
                    size: 8,
                    kind,
                }
            }
            gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type | gimli::DW_TAG_union_type => {
                let fields = self.fields(table, cache, unit, local)?;
                let kind = match go_kind {
                    Some(24) => TypeKind::String,
                    Some(23) => {
                        // The slice's `array` field is a pointer to the element.
                        let elem = fields.first().and_then(|f| match table.get(f.ty).kind {
                            TypeKind::Pointer { pointee } => pointee,
                            _ => None,
                        });
                        TypeKind::Slice { elem }
                    }
                    Some(20) => TypeKind::Interface {
                        empty: is_eface(&fields),
                    },
                    _ => TypeKind::Struct { fields },
                };
                Type { name, size, kind }
            }
            gimli::DW_TAG_typedef => {
                let under = resolve_inner(table, cache)?;
                let kind = match (go_kind, under) {
                    (Some(21), _) => TypeKind::Map {
                        // The typedef names `*hash<K,V>`.
                        hmap: under.and_then(|u| match table.get(u).kind {
                            TypeKind::Pointer { pointee } => pointee,
                            _ => None,
                        }),
                    },
                    (Some(18), _) => TypeKind::Chan,
                    (Some(19), _) => TypeKind::Func,
                    (Some(20), _) => TypeKind::Interface {
                        empty: match under.map(|u| &table.underlying(u).kind) {
                            Some(TypeKind::Struct { fields }) => is_eface(fields),
                            Some(TypeKind::Interface { empty }) => *empty,
                            _ => false,
                        },
                    },
                    (_, Some(u)) => TypeKind::Named { underlying: u },
                    (_, None) => TypeKind::Void,
                };
                let size = match under {
                    Some(u) if size == 0 => table.get(u).size,
                    _ => size,
                };
                Type { name, size, kind }
            }
            gimli::DW_TAG_const_type
            | gimli::DW_TAG_volatile_type
            | gimli::DW_TAG_restrict_type => match resolve_inner(table, cache)? {
                Some(u) => {
                    let mut t = table.get(u).clone();
                    if matches!(entry.tag(), gimli::DW_TAG_const_type) {
                        t.name = format!("const {}", t.name);
                    }
                    t.kind = TypeKind::Named { underlying: u };
                    t
                }
                None => Type {
                    name: String::from("void"),
                    size: 0,
                    kind: TypeKind::Void,
                },
            },
            gimli::DW_TAG_array_type => {
                let elem = resolve_inner(table, cache)?;
                let count = self.array_count(unit, local)?;
                let elem_size = elem.map(|e| table.get(e).size).unwrap_or(0);
                let size = if size == 0 { elem_size * count } else { size };
                Type {
                    name,
                    size,
                    kind: TypeKind::Array { elem, count },
                }
            }
            gimli::DW_TAG_enumeration_type => Type {
                name,
                size,
                kind: TypeKind::Int,
            },
            gimli::DW_TAG_subroutine_type => Type {
                name,
                size: 8,
                kind: TypeKind::Func,
            },
            gimli::DW_TAG_unspecified_type => Type {
                name,
                size: 0,
                kind: TypeKind::Void,
            },
            _ => Type {
                name,
                size,
                kind: TypeKind::Unsupported,
            },
        };
        Ok(ty)
    }

    fn fields(
        &self,
        table: &mut TypeTable,
        cache: &mut HashMap<u64, TypeId>,
        unit: &gimli::Unit<R>,
        at: UnitOffset,
    ) -> Result<Vec<Field>> {
        let mut fields = Vec::new();
        let mut tree = unit.entries_tree(Some(at))?;
        let root = tree.root()?;
        let mut children = root.children();
        while let Some(child) = children.next()? {
            let entry = child.entry();
            if entry.tag() != gimli::DW_TAG_member {
                continue;
            }
            let name = self
                .name(unit, entry, gimli::DW_AT_name)?
                .unwrap_or_default();
            let offset = entry
                .attr_value(gimli::DW_AT_data_member_location)?
                .and_then(|v| v.udata_value())
                .unwrap_or(0);
            let embedded = matches!(
                entry.attr_value(gimli::DwAt(0x2903))?,
                Some(AttributeValue::Flag(true))
            ) || matches!(
                entry.attr_value(gimli::DwAt(0x2903))?,
                Some(AttributeValue::Data1(1))
            );
            let ty = match entry.attr_value(gimli::DW_AT_type)? {
                Some(AttributeValue::UnitRef(o)) => unit_ref_to_global(unit, o),
                Some(AttributeValue::DebugInfoRef(DebugInfoOffset(o))) => o as u64,
                _ => continue,
            };
            let ty = self.resolve_type(table, cache, ty)?;
            fields.push(Field {
                name,
                offset,
                ty,
                embedded,
            });
        }
        Ok(fields)
    }

    fn array_count(&self, unit: &gimli::Unit<R>, at: UnitOffset) -> Result<u64> {
        let mut tree = unit.entries_tree(Some(at))?;
        let root = tree.root()?;
        let mut children = root.children();
        while let Some(child) = children.next()? {
            let entry = child.entry();
            if entry.tag() != gimli::DW_TAG_subrange_type {
                continue;
            }
            if let Some(n) = entry
                .attr_value(gimli::DW_AT_count)?
                .and_then(|v| v.udata_value())
            {
                return Ok(n);
            }
            if let Some(n) = entry
                .attr_value(gimli::DW_AT_upper_bound)?
                .and_then(|v| v.udata_value())
            {
                return Ok(n + 1);
            }
        }
        Ok(0)
    }
}

/// `runtime.eface` (`_type`, `data`) as opposed to `runtime.iface` (`tab`, `data`).
fn is_eface(fields: &[Field]) -> bool {
    fields.first().is_some_and(|f| f.name == "_type")
}

pub(super) fn unit_ref_to_global(unit: &gimli::Unit<R>, o: UnitOffset) -> u64 {
    match o.to_debug_info_offset(&unit.header) {
        Some(DebugInfoOffset(g)) => g as u64,
        None => 0,
    }
}
