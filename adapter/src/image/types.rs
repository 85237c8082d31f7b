//! The type model shared by the plan builder and the value decoder.
//!
//! Types are resolved from DWARF on demand (only those of traced functions)
//! into a [`TypeTable`] arena; a [`TypeId`] is an index into it. The model is
//! language-neutral but keeps Go's kinds (from `DW_AT_go_kind`), because Go's
//! register ABI and Go's notation both depend on them.

use serde::Serialize;

/// Index of a type in a [`TypeTable`].
pub type TypeId = usize;

#[derive(Debug, Clone, Serialize)]
pub struct Field {
    pub name: String,
    pub offset: u64,
    pub ty: TypeId,
    /// An embedded (anonymous) struct field in Go.
    pub embedded: bool,
}

#[derive(Debug, Clone, Serialize)]
pub enum TypeKind {
    Bool,
    /// Signed integer of `Type::size` bytes.
    Int,
    /// Unsigned integer of `Type::size` bytes (`char` types are `Int`/`Uint` too).
    Uint,
    Float,
    Complex,
    /// Go string: `{ptr, len}`.
    String,
    Pointer {
        pointee: Option<TypeId>,
    },
    /// Go slice: `{array, len, cap}`.
    Slice {
        elem: Option<TypeId>,
    },
    Array {
        elem: Option<TypeId>,
        count: u64,
    },
    Struct {
        fields: Vec<Field>,
    },
    /// Go interface: `{tab, data}`, or `{_type, data}` when `empty`
    /// (`interface {}` and other interfaces without methods). `itab_type`
    /// is where the itab `tab` points to keeps the dynamic type
    /// (`runtime.itab._type`, `internal/abi.ITab.Type` since Go 1.22),
    /// from DWARF; `None` when it does not say (the dynamic type is then
    /// not read).
    Interface {
        empty: bool,
        itab_type: Option<u32>,
    },
    /// Go map: a pointer to the runtime's map header, whose DWARF struct
    /// is `hmap` (`hash<K,V>` with buckets before Go 1.24, `map<K,V>` with
    /// a directory of Swiss tables since); `key` and `elem` are the map's
    /// own key and element types (`DW_AT_go_key`, `DW_AT_go_elem`), which
    /// the runtime stores behind a pointer when they are large.
    Map {
        hmap: Option<TypeId>,
        key: Option<TypeId>,
        elem: Option<TypeId>,
    },
    /// Go channel: a pointer to the runtime's `hchan<T>`, whose `qcount`
    /// and `dataqsiz` (elements queued, buffer size) are at `counts`, from
    /// DWARF; `None` when it does not say (the counts are then not read).
    Chan {
        counts: Option<(u32, u32)>,
    },
    /// A function value. A Go func points to a closure (`runtime.funcval`)
    /// whose word at `code_at` (from DWARF) is the code address; `None`
    /// when that is not known. C's function pointers are `Some(0)`.
    Func {
        code_at: Option<u32>,
    },
    UnsafePointer,
    /// A named type defined over another (`type Celsius float64`, a C typedef).
    Named {
        underlying: TypeId,
    },
    /// A value of a type parameter in a Go shape instantiation (a `.paramN`
    /// typedef of its GC shape, `go.shape.int`): its real type is the
    /// runtime type descriptor at entry `index` of the call's dictionary;
    /// its layout is the shape's.
    Shape {
        shape: TypeId,
        index: u64,
    },
    Void,
    /// A type the decoder has no rule for; shown by name.
    Unsupported,
}

#[derive(Debug, Clone, Serialize)]
pub struct Type {
    pub name: String,
    pub size: u64,
    pub kind: TypeKind,
}

/// Arena of resolved types.
#[derive(Debug, Default, Clone)]
pub struct TypeTable {
    types: Vec<Type>,
}

impl TypeTable {
    pub fn push(&mut self, ty: Type) -> TypeId {
        self.types.push(ty);
        self.types.len() - 1
    }

    pub fn set(&mut self, id: TypeId, ty: Type) {
        self.types[id] = ty;
    }

    pub fn len(&self) -> usize {
        self.types.len()
    }

    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    pub fn get(&self, id: TypeId) -> &Type {
        &self.types[id]
    }

    /// Follows `Named` links to the type that says how the bytes are laid out.
    pub fn underlying(&self, mut id: TypeId) -> &Type {
        // A cycle of typedefs cannot come from a compiler; the bound only
        // protects against malformed DWARF.
        for _ in 0..32 {
            match self.types[id].kind {
                TypeKind::Named { underlying }
                | TypeKind::Shape {
                    shape: underlying, ..
                } => id = underlying,
                _ => break,
            }
        }
        &self.types[id]
    }
}
