//! Type DIEs into the type model (`types`), once per DIE, in the terms of
//! the unit's language: Go's kinds come from `DW_AT_go_kind`; C and C++
//! get characters, enums with their enumerators, bitfields, `char *` as a
//! string and function pointers, and gdb's type names (`struct point *`,
//! `int (*)(int, int)`); C++ and Rust names are qualified by their
//! namespaces and classes. The library types recognised by their members
//! (Rust's `Vec`, `String`, slices and enums with data, C++'s
//! `std::string`) are `shapes`'.

use std::collections::HashMap;

use anyhow::{Context, Result};
use gimli::{AttributeValue, DebugInfoOffset, Reader as _, UnitOffset};

use super::dwarf::{is_eface, unit_ref_to_global, Dwarf, R};
use super::goruntime;
use super::names::{qualify, scope_of};
use super::shapes::{self, Members};
use super::types::{Field, Type, TypeId, TypeKind, TypeTable};
use super::Lang;

/// Go's vendor attribute carrying `reflect.Kind`.
const DW_AT_GO_KIND: gimli::DwAt = gimli::DwAt(0x2900);
/// Go's vendor attribute marking an embedded struct field.
const DW_AT_GO_EMBEDDED_FIELD: gimli::DwAt = gimli::DwAt(0x2903);
/// Go's vendor attributes naming a map type's key and element types.
const DW_AT_GO_KEY: gimli::DwAt = gimli::DwAt(0x2901);
const DW_AT_GO_ELEM: gimli::DwAt = gimli::DwAt(0x2902);
/// Go's vendor attribute of a shape instantiation's `.paramN` typedefs:
/// the dictionary entry holding the type argument's runtime descriptor.
const DW_AT_GO_DICT_INDEX: gimli::DwAt = gimli::DwAt(0x2906);

/// A flag attribute that is set (`DW_FORM_flag_present` or a data 1).
pub(super) fn flag(entry: &gimli::DebuggingInformationEntry<R>, at: gimli::DwAt) -> Result<bool> {
    Ok(match entry.attr_value(at)? {
        Some(AttributeValue::Flag(f)) => f,
        Some(v) => v.udata_value() == Some(1),
        None => false,
    })
}

impl Dwarf {
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
        let (ty, by_reference) = self
            .read_type(table, cache, die)
            .with_context(|| format!("reading type DIE {die:#x}"))?;
        table.set(id, ty);
        if by_reference {
            table.set_by_reference(id);
        }
        Ok(id)
    }

    /// The type at `die`, and (C++) whether calls pass it by reference.
    fn read_type(
        &self,
        table: &mut TypeTable,
        cache: &mut HashMap<u64, TypeId>,
        die: u64,
    ) -> Result<(Type, bool)> {
        let (u, local) = self.locate(die)?;
        let unit = &self.units[u].1;
        let lang = self.langs[u];
        let scopes = self.scopes.get(u).map(Vec::as_slice).unwrap_or(&[]);
        let entry = unit.entry(local)?;
        let name = self
            .name(unit, &entry, gimli::DW_AT_name)?
            .unwrap_or_default();
        // C++ and Rust name types by their namespaces and classes.
        let qualified = match lang {
            Lang::Cpp | Lang::Rust if !name.is_empty() => qualify(scopes, local, &name),
            _ => name.clone(),
        };
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
        let mut by_reference = false;
        let ty = match entry.tag() {
            gimli::DW_TAG_base_type => {
                let enc = match entry.attr_value(gimli::DW_AT_encoding)? {
                    Some(AttributeValue::Encoding(e)) => e,
                    _ => gimli::DW_ATE_signed,
                };
                let kind = match enc {
                    _ if lang != Lang::Go && size == 0 => TypeKind::Void,
                    gimli::DW_ATE_signed_char | gimli::DW_ATE_unsigned_char if lang != Lang::Go => {
                        TypeKind::Char {
                            signed: enc == gimli::DW_ATE_signed_char,
                        }
                    }
                    gimli::DW_ATE_UTF if lang != Lang::Go => TypeKind::Char { signed: false },
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
                if lang == Lang::Go {
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
                } else {
                    self.pointer(table, cache, entry.tag(), name, inner, lang)?
                }
            }
            gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type | gimli::DW_TAG_union_type => {
                let members = self.members(table, cache, u, local)?;
                if lang == Lang::Go {
                    let fields = members.fields;
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
                            itab_type: goruntime::itab_type(table, &fields),
                        },
                        _ => TypeKind::Struct { fields },
                    };
                    Type { name, size, kind }
                } else {
                    let name = match (lang, qualified.is_empty(), entry.tag()) {
                        (Lang::C, _, tag) => c_tagged(tag, &name),
                        (_, true, gimli::DW_TAG_union_type) => String::from("union {...}"),
                        (_, true, _) => String::from("struct {...}"),
                        _ => qualified,
                    };
                    by_reference = lang == Lang::Cpp && shapes::nontrivial(table, &members);
                    let kind = match (lang, members.variant_part) {
                        (Lang::Rust, Some(part)) => {
                            let (discr, variants) = self.variant_part(table, cache, unit, part)?;
                            match variants.is_empty() {
                                true => None,
                                false => Some(TypeKind::Variants { discr, variants }),
                            }
                        }
                        (Lang::Rust, None) => shapes::rust(table, &name, &members),
                        (Lang::Cpp, _) => shapes::cpp(table, &name, &members.fields),
                        _ => None,
                    };
                    let kind = kind.unwrap_or(TypeKind::Struct {
                        fields: members.fields,
                    });
                    Type { name, size, kind }
                }
            }
            gimli::DW_TAG_typedef => {
                let under = resolve_inner(table, cache)?;
                let kind = match (go_kind, under) {
                    (Some(21), _) => TypeKind::Map {
                        // The typedef names `*hash<K,V>` (`*map<K,V>`).
                        hmap: under.and_then(|u| match table.get(u).kind {
                            TypeKind::Pointer { pointee } => pointee,
                            _ => None,
                        }),
                        key: self.type_attr(table, cache, unit, &entry, DW_AT_GO_KEY)?,
                        elem: self.type_attr(table, cache, unit, &entry, DW_AT_GO_ELEM)?,
                    },
                    (Some(18), _) => TypeKind::Chan {
                        // The typedef names `*hchan<T>`.
                        counts: under
                            .and_then(|u| match table.get(u).kind {
                                TypeKind::Pointer { pointee } => pointee,
                                _ => None,
                            })
                            .and_then(|h| goruntime::chan_counts(table, h)),
                    },
                    (Some(19), _) => TypeKind::Func {
                        code_at: self.func_code,
                    },
                    (Some(20), _) => match under.map(|u| &table.underlying(u).kind) {
                        Some(TypeKind::Struct { fields }) => TypeKind::Interface {
                            empty: is_eface(fields),
                            itab_type: goruntime::itab_type(table, fields),
                        },
                        Some(&TypeKind::Interface { empty, itab_type }) => {
                            TypeKind::Interface { empty, itab_type }
                        }
                        _ => TypeKind::Interface {
                            empty: false,
                            itab_type: None,
                        },
                    },
                    (_, Some(u)) => match entry
                        .attr_value(DW_AT_GO_DICT_INDEX)?
                        .and_then(|v| v.udata_value())
                    {
                        Some(index) => TypeKind::Shape { shape: u, index },
                        None => TypeKind::Named { underlying: u },
                    },
                    (_, None) => TypeKind::Void,
                };
                let size = match under {
                    Some(u) if size == 0 => table.get(u).size,
                    _ => size,
                };
                Type {
                    name: qualified,
                    size,
                    kind,
                }
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
                    name: String::from(match entry.tag() {
                        gimli::DW_TAG_const_type if lang != Lang::Go => "const void",
                        _ => "void",
                    }),
                    size: 0,
                    kind: TypeKind::Void,
                },
            },
            gimli::DW_TAG_array_type => {
                let elem = resolve_inner(table, cache)?;
                let counts = self.array_counts(unit, local)?;
                match (lang, counts.as_slice()) {
                    (Lang::Go, _) | (_, [] | [_]) => {
                        let count = counts.first().copied().unwrap_or(0);
                        let elem_size = elem.map(|e| table.get(e).size).unwrap_or(0);
                        let size = if size == 0 { elem_size * count } else { size };
                        let name = match (lang, name.is_empty(), elem) {
                            (Lang::C | Lang::Cpp, true, Some(e)) => {
                                format!("{} [{count}]", table.get(e).name)
                            }
                            (Lang::Rust, true, Some(e)) => {
                                format!("[{}; {count}]", table.get(e).name)
                            }
                            _ => name,
                        };
                        Type {
                            name,
                            size,
                            kind: TypeKind::Array { elem, count },
                        }
                    }
                    // `int m[2][3]`: one DIE, a subrange per dimension; an
                    // array of arrays in the model.
                    (_, dims) => nested_array(table, elem, dims),
                }
            }
            gimli::DW_TAG_enumeration_type if lang != Lang::Go => {
                let (signed, mut enumerators) =
                    self.enumerators(table, cache, unit, local, inner)?;
                if lang == Lang::Cpp {
                    // As gdb names them: `geo::Mode::Auto` for an enum
                    // class, `geo::RED` for a plain enum in `geo`.
                    let scope = match flag(&entry, gimli::DW_AT_enum_class)? {
                        true if !qualified.is_empty() => Some(qualified.clone()),
                        _ => scope_of(scopes, local).map(str::to_string),
                    };
                    if let Some(scope) = scope {
                        for (n, _) in &mut enumerators {
                            *n = format!("{scope}::{n}");
                        }
                    }
                }
                let name = match lang {
                    Lang::C => c_tagged(entry.tag(), &name),
                    _ if qualified.is_empty() => String::from("enum {...}"),
                    _ => qualified,
                };
                Type {
                    name,
                    size,
                    kind: TypeKind::Enum {
                        signed,
                        enumerators,
                    },
                }
            }
            gimli::DW_TAG_enumeration_type => Type {
                name,
                size,
                kind: TypeKind::Int,
            },
            gimli::DW_TAG_subroutine_type => {
                let name = match lang {
                    Lang::Go => name,
                    _ => self.signature(table, cache, unit, local, inner)?,
                };
                Type {
                    name,
                    size: 8,
                    kind: TypeKind::Func { code_at: Some(0) },
                }
            }
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
        Ok((ty, by_reference))
    }

    /// The type a reference attribute `at` of `entry` names, resolved.
    fn type_attr(
        &self,
        table: &mut TypeTable,
        cache: &mut HashMap<u64, TypeId>,
        unit: &gimli::Unit<R>,
        entry: &gimli::DebuggingInformationEntry<R>,
        at: gimli::DwAt,
    ) -> Result<Option<TypeId>> {
        let die = match entry.attr_value(at)? {
            Some(AttributeValue::UnitRef(o)) => unit_ref_to_global(unit, o),
            Some(AttributeValue::DebugInfoRef(DebugInfoOffset(o))) => o as u64,
            _ => return Ok(None),
        };
        Ok(Some(self.resolve_type(table, cache, die)?))
    }

    /// A C, C++ or Rust pointer or reference: to code (a function
    /// pointer), to C characters (a string), or to a value.
    fn pointer(
        &self,
        table: &mut TypeTable,
        cache: &mut HashMap<u64, TypeId>,
        tag: gimli::DwTag,
        name: String,
        inner: Option<u64>,
        lang: Lang,
    ) -> Result<Type> {
        let pointee = match inner {
            Some(o) => Some(self.resolve_type(table, cache, o)?),
            None => None,
        };
        let target = pointee.map(|p| table.underlying(p));
        let sigil = match tag {
            gimli::DW_TAG_reference_type => "&",
            gimli::DW_TAG_rvalue_reference_type => "&&",
            _ => "*",
        };
        let (kind, default_name) = match target.map(|t| (&t.kind, t.size)) {
            Some((TypeKind::Func { .. }, _)) => {
                // `int (int, int)` → `int (*)(int, int)`.
                let sig = pointee
                    .map(|p| table.get(p).name.clone())
                    .unwrap_or_default();
                let name = match sig.find(" (") {
                    Some(i) => format!("{} ({sigil}){}", &sig[..i], &sig[i + 1..]),
                    None => format!("{sig} {sigil}"),
                };
                (TypeKind::FnPtr, name)
            }
            Some((TypeKind::Char { .. }, 1))
                if matches!(lang, Lang::C | Lang::Cpp) && sigil == "*" =>
            {
                (TypeKind::CString { pointee }, String::new())
            }
            _ => (TypeKind::Pointer { pointee }, String::new()),
        };
        let name = match (name.is_empty(), default_name.is_empty()) {
            (false, _) => name,
            (true, false) => default_name,
            (true, true) => match pointee {
                Some(p) => {
                    let p = &table.get(p).name;
                    match p.ends_with('*') || p.ends_with('&') {
                        true => format!("{p}{sigil}"),
                        false => format!("{p} {sigil}"),
                    }
                }
                None => format!("void {sigil}"),
            },
        };
        Ok(Type {
            name,
            size: 8,
            kind,
        })
    }

    /// The members of the struct, class or union at `at`: its fields
    /// (bitfields as `Bits` types, C++ base classes as fields named
    /// `<Base>`, static members left out), and what `shapes` reads
    /// besides: a Rust enum's variant part, template parameters, and
    /// whether C++ copies it with code of its own.
    fn members(
        &self,
        table: &mut TypeTable,
        cache: &mut HashMap<u64, TypeId>,
        u: usize,
        at: UnitOffset,
    ) -> Result<Members> {
        let unit = &self.units[u].1;
        let lang = self.langs[u];
        let mut m = Members::default();
        let class_name = self
            .name(unit, &unit.entry(at)?, gimli::DW_AT_name)?
            .unwrap_or_default();
        each_child(unit, at, |entry| {
            match entry.tag() {
                gimli::DW_TAG_member | gimli::DW_TAG_inheritance => {}
                gimli::DW_TAG_variant_part => {
                    m.variant_part = Some(entry.offset());
                    return Ok(true);
                }
                gimli::DW_TAG_template_type_parameter => {
                    let name = self.name(unit, entry, gimli::DW_AT_name)?;
                    if let (Some(name), Some(ty)) = (name, self.type_ref(unit, entry, false)?) {
                        m.templates
                            .push((name, self.resolve_type(table, cache, ty)?));
                    }
                    return Ok(true);
                }
                gimli::DW_TAG_subprogram if lang == Lang::Cpp => {
                    m.nontrivial |= self.copies_with_code(unit, entry, &class_name)?;
                    return Ok(true);
                }
                _ => return Ok(true),
            }
            if lang != Lang::Go
                && (flag(entry, gimli::DW_AT_external)? || flag(entry, gimli::DW_AT_declaration)?)
            {
                // A static member: not part of the value.
                return Ok(true);
            }
            let inheritance = entry.tag() == gimli::DW_TAG_inheritance;
            if inheritance && flag(entry, gimli::DW_AT_virtuality)? {
                m.nontrivial = true;
            }
            let name = self
                .name(unit, entry, gimli::DW_AT_name)?
                .unwrap_or_default();
            if lang == Lang::Cpp && name.starts_with("_vptr") {
                m.nontrivial = true;
            }
            let mut offset = entry
                .attr_value(gimli::DW_AT_data_member_location)?
                .and_then(|v| v.udata_value())
                .unwrap_or(0);
            let embedded = matches!(
                entry.attr_value(DW_AT_GO_EMBEDDED_FIELD)?,
                Some(AttributeValue::Flag(true))
            ) || matches!(
                entry.attr_value(DW_AT_GO_EMBEDDED_FIELD)?,
                Some(AttributeValue::Data1(1))
            );
            let ty = match entry.attr_value(gimli::DW_AT_type)? {
                Some(AttributeValue::UnitRef(o)) => unit_ref_to_global(unit, o),
                Some(AttributeValue::DebugInfoRef(DebugInfoOffset(o))) => o as u64,
                _ => return Ok(true),
            };
            let mut ty = self.resolve_type(table, cache, ty)?;
            if lang == Lang::Cpp && name.starts_with("_vptr") {
                // The vtable pointer: shown by address, not followed.
                let t = table.get(ty).clone();
                ty = table.push(Type {
                    kind: TypeKind::Pointer { pointee: None },
                    ..t
                });
            }
            let name = match inheritance {
                true => format!("<{}>", table.get(ty).name),
                false => name,
            };
            let bits = entry
                .attr_value(gimli::DW_AT_bit_size)?
                .and_then(|v| v.udata_value());
            if let (Some(bits), true) = (bits, lang != Lang::Go) {
                // Where the bitfield starts, in bits from the struct's
                // start: DWARF 5's `DW_AT_data_bit_offset`, or DWARF 4's
                // offset from the most significant bit of its storage unit.
                let start = match entry
                    .attr_value(gimli::DW_AT_data_bit_offset)?
                    .and_then(|v| v.udata_value())
                {
                    Some(b) => b,
                    None => {
                        let from_msb = entry
                            .attr_value(gimli::DW_AT_bit_offset)?
                            .and_then(|v| v.udata_value())
                            .unwrap_or(0);
                        let unit_size = entry
                            .attr_value(gimli::DW_AT_byte_size)?
                            .and_then(|v| v.udata_value())
                            .unwrap_or(table.get(ty).size);
                        (offset * 8 + unit_size * 8).saturating_sub(from_msb + bits)
                    }
                };
                offset = start / 8;
                let shift = (start % 8) as u32;
                let base = table.get(ty).clone();
                ty = table.push(Type {
                    name: base.name,
                    size: (shift as u64 + bits).div_ceil(8),
                    kind: TypeKind::Bits {
                        base: ty,
                        shift,
                        bits: bits as u32,
                    },
                });
            }
            m.fields.push(Field {
                name,
                offset,
                ty,
                embedded,
            });
            Ok(true)
        })?;
        Ok(m)
    }

    /// Whether a C++ member function DIE makes its class one that calls
    /// copy with code (a destructor or copy/move constructor written by
    /// the user, or a virtual method), so that the ABI passes and returns
    /// it by hidden reference.
    fn copies_with_code(
        &self,
        unit: &gimli::Unit<R>,
        entry: &gimli::DebuggingInformationEntry<R>,
        class: &str,
    ) -> Result<bool> {
        if entry.attr_value(gimli::DW_AT_virtuality)?.is_some() {
            return Ok(true);
        }
        // `= default` in the class body keeps it trivial; an implicit
        // one is trivial unless a member or base is not (checked apart).
        if flag(entry, gimli::DW_AT_artificial)?
            || entry.attr_value(gimli::DW_AT_defaulted)?.is_some()
        {
            return Ok(false);
        }
        let Some(name) = self.name(unit, entry, gimli::DW_AT_name)? else {
            return Ok(false);
        };
        if name.starts_with('~') {
            return Ok(true);
        }
        let short = class.split('<').next().unwrap_or(class);
        if name != short {
            return Ok(false);
        }
        // A constructor whose first parameter after `this` is a reference.
        let mut copies = false;
        each_child(unit, entry.offset(), |p| {
            if p.tag() != gimli::DW_TAG_formal_parameter || flag(p, gimli::DW_AT_artificial)? {
                return Ok(true);
            }
            if let Some(AttributeValue::UnitRef(t)) = p.attr_value(gimli::DW_AT_type)? {
                copies = matches!(
                    unit.entry(t)?.tag(),
                    gimli::DW_TAG_reference_type | gimli::DW_TAG_rvalue_reference_type
                );
            }
            Ok(false)
        })?;
        Ok(copies)
    }

    /// An enum's enumerators and whether its values are signed.
    fn enumerators(
        &self,
        table: &mut TypeTable,
        cache: &mut HashMap<u64, TypeId>,
        unit: &gimli::Unit<R>,
        at: UnitOffset,
        inner: Option<u64>,
    ) -> Result<(bool, Vec<(String, i64)>)> {
        let mut out = Vec::new();
        each_child(unit, at, |entry| {
            if entry.tag() != gimli::DW_TAG_enumerator {
                return Ok(true);
            }
            let Some(name) = self.name(unit, entry, gimli::DW_AT_name)? else {
                return Ok(true);
            };
            let value = match entry.attr_value(gimli::DW_AT_const_value)? {
                Some(AttributeValue::Sdata(v)) => v,
                Some(AttributeValue::Udata(v)) => v as i64,
                Some(AttributeValue::Data1(v)) => v as i64,
                Some(AttributeValue::Data2(v)) => v as i64,
                Some(AttributeValue::Data4(v)) => v as i64,
                Some(AttributeValue::Data8(v)) => v as i64,
                _ => return Ok(true),
            };
            out.push((name, value));
            Ok(true)
        })?;
        let signed = match inner {
            Some(o) => {
                let t = self.resolve_type(table, cache, o)?;
                matches!(
                    table.underlying(t).kind,
                    TypeKind::Int | TypeKind::Char { signed: true }
                )
            }
            None => out.iter().any(|(_, v)| *v < 0),
        };
        Ok((signed, out))
    }

    /// A C function type's name as gdb writes it: `int (int, char *)`.
    fn signature(
        &self,
        table: &mut TypeTable,
        cache: &mut HashMap<u64, TypeId>,
        unit: &gimli::Unit<R>,
        at: UnitOffset,
        result: Option<u64>,
    ) -> Result<String> {
        let result = match result {
            Some(o) => {
                let t = self.resolve_type(table, cache, o)?;
                table.get(t).name.clone()
            }
            None => String::from("void"),
        };
        let mut params = Vec::new();
        each_child(unit, at, |entry| {
            match entry.tag() {
                gimli::DW_TAG_formal_parameter => match self.type_ref(unit, entry, false)? {
                    Some(o) => {
                        let t = self.resolve_type(table, cache, o)?;
                        params.push(table.get(t).name.clone());
                    }
                    None => params.push(String::from("?")),
                },
                gimli::DW_TAG_unspecified_parameters => params.push(String::from("...")),
                _ => {}
            }
            Ok(true)
        })?;
        if params.is_empty() {
            params.push(String::from("void"));
        }
        Ok(format!("{result} ({})", params.join(", ")))
    }

    /// The element count of each dimension of the array type at `at`.
    fn array_counts(&self, unit: &gimli::Unit<R>, at: UnitOffset) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        each_child(unit, at, |entry| {
            if entry.tag() != gimli::DW_TAG_subrange_type {
                return Ok(true);
            }
            if let Some(n) = entry
                .attr_value(gimli::DW_AT_count)?
                .and_then(|v| v.udata_value())
            {
                out.push(n);
            } else if let Some(n) = entry
                .attr_value(gimli::DW_AT_upper_bound)?
                .and_then(|v| v.udata_value())
            {
                out.push(n + 1);
            } else {
                // A flexible array member, `int a[]`: no elements known.
                out.push(0);
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// The variants of the Rust enum whose variant part is at `at`.
    fn variant_part(
        &self,
        table: &mut TypeTable,
        cache: &mut HashMap<u64, TypeId>,
        unit: &gimli::Unit<R>,
        at: UnitOffset,
    ) -> Result<(Option<super::types::Discr>, Vec<super::types::Variant>)> {
        let mut tree = unit.entries_tree(Some(at))?;
        let root = tree.root()?;
        let discr_at = match root.entry().attr_value(gimli::DW_AT_discr)? {
            Some(AttributeValue::UnitRef(o)) => Some(o),
            _ => None,
        };
        let mut discr = None;
        let mut variants = Vec::new();
        let mut children = root.children();
        while let Some(child) = children.next()? {
            let entry = child.entry();
            match entry.tag() {
                gimli::DW_TAG_member if Some(entry.offset()) == discr_at => {
                    let offset = entry
                        .attr_value(gimli::DW_AT_data_member_location)?
                        .and_then(|v| v.udata_value())
                        .unwrap_or(0);
                    if let Some(t) = self.type_ref(unit, entry, false)? {
                        let ty = self.resolve_type(table, cache, t)?;
                        discr = Some(super::types::Discr { offset, ty });
                    }
                }
                gimli::DW_TAG_variant => {
                    let value = match entry.attr_value(gimli::DW_AT_discr_value)? {
                        Some(AttributeValue::Sdata(v)) => Some(v as u64),
                        Some(AttributeValue::Block(b)) => {
                            // A 128-bit value: its low 64 bits.
                            let b = b.to_slice()?;
                            let mut w = [0u8; 8];
                            let n = b.len().min(8);
                            w[..n].copy_from_slice(&b[..n]);
                            Some(u64::from_le_bytes(w))
                        }
                        Some(v) => v.udata_value(),
                        None => None,
                    };
                    let mut inner = child.children();
                    while let Some(m) = inner.next()? {
                        let m = m.entry();
                        if m.tag() != gimli::DW_TAG_member {
                            continue;
                        }
                        let name = self.name(unit, m, gimli::DW_AT_name)?.unwrap_or_default();
                        let Some(t) = self.type_ref(unit, m, false)? else {
                            continue;
                        };
                        let ty = self.resolve_type(table, cache, t)?;
                        variants.push(super::types::Variant { name, value, ty });
                        break;
                    }
                }
                _ => {}
            }
        }
        Ok((discr, variants))
    }
}

/// Calls `f` with each child of the DIE at `at`, in order, while it
/// returns `true`.
fn each_child(
    unit: &gimli::Unit<R>,
    at: UnitOffset,
    mut f: impl FnMut(&gimli::DebuggingInformationEntry<R>) -> Result<bool>,
) -> Result<()> {
    let mut tree = unit.entries_tree(Some(at))?;
    let root = tree.root()?;
    let mut children = root.children();
    while let Some(child) = children.next()? {
        if !f(child.entry())? {
            break;
        }
    }
    Ok(())
}

/// A C struct, union or enum name as C writes it: `struct point`.
fn c_tagged(tag: gimli::DwTag, name: &str) -> String {
    let keyword = match tag {
        gimli::DW_TAG_union_type => "union",
        gimli::DW_TAG_enumeration_type => "enum",
        _ => "struct",
    };
    match name.is_empty() {
        true => format!("{keyword} {{...}}"),
        false => format!("{keyword} {name}"),
    }
}

/// `elem [d0][d1]…` as an array of arrays.
fn nested_array(table: &mut TypeTable, elem: Option<TypeId>, dims: &[u64]) -> Type {
    let base = elem.map(|e| table.get(e).name.clone()).unwrap_or_default();
    let mut inner = elem;
    let mut size = elem.map(|e| table.get(e).size).unwrap_or(0);
    for (i, &count) in dims.iter().enumerate().rev() {
        size *= count;
        let suffix: String = dims[i..].iter().map(|d| format!("[{d}]")).collect();
        let t = Type {
            name: format!("{base} {suffix}"),
            size,
            kind: TypeKind::Array { elem: inner, count },
        };
        if i == 0 {
            return t;
        }
        inner = Some(table.push(t));
    }
    Type {
        name: base,
        size: 0,
        kind: TypeKind::Unsupported,
    }
}
