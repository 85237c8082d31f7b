//! Library types recognised by the names of their members, not by fixed
//! layouts (which change between compiler and library versions): Rust's
//! slices and `&str` (`data_ptr`, `length`), `Vec<T>` (its `len` and the
//! `ptr` and `cap` somewhere inside its `buf`), `String` (a `vec`), and
//! C++'s `std::string` (libstdc++'s `_M_dataplus._M_p` and
//! `_M_string_length`) become [`TypeKind::Span`]s; a trait object
//! (`pointer`, `vtable`) a [`TypeKind::Dyn`]; and whether a C++ class is
//! one calls pass by hidden reference.

use gimli::UnitOffset;

use super::types::{Field, TypeId, TypeKind, TypeTable};

/// What a struct DIE holds besides its fields, for the shapes here.
#[derive(Debug, Default)]
pub(super) struct Members {
    pub fields: Vec<Field>,
    /// A Rust enum's `DW_TAG_variant_part`.
    pub variant_part: Option<UnitOffset>,
    /// Template type parameters: (`T`, type).
    pub templates: Vec<(String, TypeId)>,
    /// C++: a member function of its own copies or destroys it with code.
    pub nontrivial: bool,
}

/// Whether C++ passes and returns a class through a hidden reference: it
/// has a user-written destructor, copy or move constructor, or virtual
/// methods, or a base or member that does.
pub(super) fn nontrivial(table: &TypeTable, m: &Members) -> bool {
    m.nontrivial
        || m.fields.iter().any(|f| {
            let mut t = f.ty;
            // Through arrays of such members.
            for _ in 0..8 {
                match table.underlying(t).kind {
                    TypeKind::Array { elem: Some(e), .. } => t = e,
                    _ => break,
                }
            }
            table.by_reference(t)
        })
}

/// The shape of a Rust struct named `name` (qualified), if it is one the
/// notation shows as a sequence.
pub(super) fn rust(table: &TypeTable, name: &str, m: &Members) -> Option<TypeKind> {
    let field = |n: &str| m.fields.iter().find(|f| f.name == n);
    // `&str`, `&[T]`, `&mut [T]`, `Box<[T]>`, `*const str`: a fat pointer.
    if let (Some(ptr), Some(len), 2) = (field("data_ptr"), field("length"), m.fields.len()) {
        let elem = match table.underlying(ptr.ty).kind {
            TypeKind::Pointer { pointee } => pointee,
            _ => return None,
        };
        return Some(TypeKind::Span {
            elem,
            ptr: ptr.offset as u32,
            len: len.offset as u32,
            cap: None,
            text: is_str(name),
        });
    }
    // `&dyn Trait`, `Box<dyn Trait>`: the value and its vtable.
    if let (Some(data), Some(vtable), 2) = (field("pointer"), field("vtable"), m.fields.len()) {
        return Some(TypeKind::Dyn {
            data: data.offset as u32,
            vtable: vtable.offset as u32,
        });
    }
    let bare = name.split('<').next().unwrap_or(name);
    match bare {
        "alloc::vec::Vec" => {
            let len = field("len")?;
            let buf = field("buf")?;
            let (ptr_at, ptr_ty) = find(table, buf.ty, "ptr", 0)?;
            let cap = find(table, buf.ty, "cap", 0).map(|(at, _)| buf.offset + at);
            let elem = m
                .templates
                .iter()
                .find(|(n, _)| n == "T")
                .map(|(_, t)| *t)
                .or(match table.underlying(ptr_ty).kind {
                    TypeKind::Pointer { pointee } => pointee,
                    _ => None,
                });
            Some(TypeKind::Span {
                elem,
                ptr: (buf.offset + ptr_at) as u32,
                len: len.offset as u32,
                cap: cap.map(|c| c as u32),
                text: false,
            })
        }
        "alloc::string::String" => {
            let vec = field("vec")?;
            match &table.underlying(vec.ty).kind {
                TypeKind::Span {
                    elem,
                    ptr,
                    len,
                    cap,
                    ..
                } => Some(TypeKind::Span {
                    elem: *elem,
                    ptr: vec.offset as u32 + ptr,
                    len: vec.offset as u32 + len,
                    cap: cap.map(|c| vec.offset as u32 + c),
                    text: true,
                }),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether a fat pointer's target is `str`.
fn is_str(name: &str) -> bool {
    let target = name
        .trim_start_matches('&')
        .trim_start_matches("mut ")
        .trim_start_matches("*const ")
        .trim_start_matches("*mut ");
    target == "str" || target.starts_with("alloc::boxed::Box<str,")
}

/// The shape of a C++ class named `name`: libstdc++'s `std::string`.
pub(super) fn cpp(table: &TypeTable, name: &str, fields: &[Field]) -> Option<TypeKind> {
    let text = name.starts_with("std::__cxx11::basic_string<char,")
        || name.starts_with("std::basic_string<char,");
    if !text {
        return None;
    }
    let plus = fields.iter().find(|f| f.name == "_M_dataplus")?;
    let len = fields.iter().find(|f| f.name == "_M_string_length")?;
    let (p_at, p_ty) = find(table, plus.ty, "_M_p", 0)?;
    let elem = match table.underlying(p_ty).kind {
        TypeKind::CString { pointee } | TypeKind::Pointer { pointee } => pointee,
        _ => None,
    };
    Some(TypeKind::Span {
        elem,
        ptr: (plus.offset + p_at) as u32,
        len: len.offset as u32,
        cap: None,
        text: true,
    })
}

/// The offset (in the struct of type `ty`) and type of the scalar under
/// the first member named `want`, searched depth first through nested
/// structs and then followed down through single-member wrappers
/// (`Unique { pointer: NonNull { pointer: *const u8 } }`, `Cap(usize)`).
fn find(table: &TypeTable, ty: TypeId, want: &str, depth: u32) -> Option<(u64, TypeId)> {
    if depth > 8 {
        return None;
    }
    let TypeKind::Struct { fields } = &table.underlying(ty).kind else {
        return None;
    };
    for f in fields {
        if f.name == want {
            return Some(leaf(table, f.ty, f.offset));
        }
    }
    fields
        .iter()
        .find_map(|f| find(table, f.ty, want, depth + 1).map(|(at, t)| (f.offset + at, t)))
}

/// The scalar a chain of single-member structs wraps, and its offset.
fn leaf(table: &TypeTable, ty: TypeId, at: u64) -> (u64, TypeId) {
    let (mut ty, mut at) = (ty, at);
    for _ in 0..8 {
        let TypeKind::Struct { fields } = &table.underlying(ty).kind else {
            break;
        };
        let sized: Vec<&Field> = fields.iter().filter(|f| table.get(f.ty).size > 0).collect();
        match sized.as_slice() {
            [only] => {
                at += only.offset;
                ty = only.ty;
            }
            _ => break,
        }
    }
    (at, ty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::recipe::tests::{field, ty};

    #[test]
    fn vec_and_string_are_found_by_member_names_at_any_depth() {
        let mut t = TypeTable::default();
        let u8t = ty(&mut t, "u8", 1, TypeKind::Uint);
        let i32t = ty(&mut t, "i32", 4, TypeKind::Int);
        let usize_t = ty(&mut t, "usize", 8, TypeKind::Uint);
        let zst = ty(
            &mut t,
            "PhantomData<u8>",
            0,
            TypeKind::Struct { fields: vec![] },
        );
        let raw = ty(
            &mut t,
            "*const u8",
            8,
            TypeKind::Pointer { pointee: Some(u8t) },
        );
        let non_null = ty(
            &mut t,
            "NonNull<u8>",
            8,
            TypeKind::Struct {
                fields: vec![field("pointer", 0, raw)],
            },
        );
        let unique = ty(
            &mut t,
            "Unique<u8>",
            8,
            TypeKind::Struct {
                fields: vec![field("pointer", 0, non_null), field("_marker", 8, zst)],
            },
        );
        let cap = ty(
            &mut t,
            "UsizeNoHighBit",
            8,
            TypeKind::Struct {
                fields: vec![field("__0", 0, usize_t)],
            },
        );
        // Rust 1.95: cap first, then ptr, inside `buf.inner`.
        let inner = ty(
            &mut t,
            "RawVecInner",
            16,
            TypeKind::Struct {
                fields: vec![field("ptr", 8, unique), field("cap", 0, cap)],
            },
        );
        let raw_vec = ty(
            &mut t,
            "RawVec<i32>",
            16,
            TypeKind::Struct {
                fields: vec![field("inner", 0, inner), field("_marker", 16, zst)],
            },
        );
        let m = Members {
            fields: vec![field("buf", 0, raw_vec), field("len", 16, usize_t)],
            templates: vec![("T".into(), i32t)],
            ..Members::default()
        };
        let vec = rust(&t, "alloc::vec::Vec<i32, alloc::alloc::Global>", &m).expect("a Vec");
        let TypeKind::Span {
            elem,
            ptr,
            len,
            cap,
            text,
        } = vec
        else {
            panic!("{vec:?}")
        };
        assert_eq!(
            (elem, ptr, len, cap, text),
            (Some(i32t), 8, 16, Some(0), false)
        );
        let v = ty(&mut t, "Vec<u8>", 24, vec);
        let s = Members {
            fields: vec![field("vec", 0, v)],
            ..Members::default()
        };
        let string = rust(&t, "alloc::string::String", &s).expect("a String");
        assert!(matches!(
            string,
            TypeKind::Span {
                ptr: 8,
                len: 16,
                text: true,
                ..
            }
        ));
        // `&str` and `&[T]`.
        let fat = Members {
            fields: vec![field("data_ptr", 0, raw), field("length", 8, usize_t)],
            ..Members::default()
        };
        assert!(matches!(
            rust(&t, "&str", &fat),
            Some(TypeKind::Span { text: true, .. })
        ));
        assert!(matches!(
            rust(&t, "&[u8]", &fat),
            Some(TypeKind::Span { text: false, .. })
        ));
        let point = Members {
            fields: vec![field("data_ptr", 0, raw)],
            ..Members::default()
        };
        assert!(rust(&t, "main::Point", &point).is_none());
    }
}
