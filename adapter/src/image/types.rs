//! The type model shared by the plan builder and the value decoder.
//!
//! Types are resolved from DWARF on demand (only those of traced functions)
//! into a [`TypeTable`] arena; a [`TypeId`] is an index into it. The model is
//! language-neutral but keeps the kinds a calling convention or a notation
//! tells apart: Go's (from `DW_AT_go_kind`: strings, slices, interfaces,
//! maps…), C's (characters, enums, bitfields, strings behind `char *`,
//! function pointers) and Rust's (slices and vectors described by a pointer
//! and a length, enums with data).

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
    /// A character type of `Type::size` bytes: C's `char`s (gdb shows
    /// the number and the character), Rust's `char` (a Unicode scalar).
    Char {
        signed: bool,
    },
    /// An integer of `Type::size` bytes with named values (C, C++ and
    /// fieldless Rust enums).
    Enum {
        signed: bool,
        enumerators: Vec<(String, i64)>,
    },
    /// A bitfield: `bits` bits from bit `shift` of the `Type::size` bytes
    /// at the field's offset, read as `base` (an integer, `bool`, a
    /// character or an enum).
    Bits {
        base: TypeId,
        shift: u32,
        bits: u32,
    },
    /// A pointer to C characters (`char *`, `const unsigned char *`):
    /// shown as the NUL-terminated string it points to.
    CString {
        pointee: Option<TypeId>,
    },
    /// A pointer to code: a C function pointer, a Rust `fn`.
    FnPtr,
    /// A run of elements given by a pointer to the first one and a count
    /// (Rust's `&str`, `&[T]`, `String`, `Vec<T>`; C++'s `std::string`):
    /// `ptr`, `len` and `cap` are the byte offsets of those words in the
    /// value, `text` says the elements are the bytes of a string.
    Span {
        elem: Option<TypeId>,
        ptr: u32,
        len: u32,
        cap: Option<u32>,
        text: bool,
    },
    /// A Rust trait object (`&dyn Trait`, `Box<dyn Trait>`): a pointer to
    /// the value at byte `data` and one to its vtable at byte `vtable`,
    /// which names the value's type.
    Dyn {
        data: u32,
        vtable: u32,
    },
    /// A Rust enum with data (`DW_TAG_variant_part`): the variant is the
    /// one whose `value` the discriminant holds, else the one without a
    /// value (niche-encoded enums store the discriminant inside the data
    /// of that variant, rust-lang/rust#62839).
    Variants {
        discr: Option<Discr>,
        variants: Vec<Variant>,
    },
}

/// Where a Rust enum keeps its discriminant.
#[derive(Debug, Clone, Serialize)]
pub struct Discr {
    pub offset: u64,
    pub ty: TypeId,
}

/// One variant of a Rust enum.
#[derive(Debug, Clone, Serialize)]
pub struct Variant {
    pub name: String,
    /// The discriminant value selecting it; `None` for the variant every
    /// other value selects.
    pub value: Option<u64>,
    /// The variant's struct, its fields at their offsets in the enum.
    pub ty: TypeId,
}

impl TypeKind {
    /// Whether a value of this kind is one integer-class scalar for a
    /// calling convention: booleans, integers, characters, enums and
    /// every kind of pointer.
    pub fn is_integer_scalar(&self) -> bool {
        matches!(
            self,
            TypeKind::Bool
                | TypeKind::Int
                | TypeKind::Uint
                | TypeKind::Char { .. }
                | TypeKind::Enum { .. }
                | TypeKind::Pointer { .. }
                | TypeKind::CString { .. }
                | TypeKind::FnPtr
                | TypeKind::UnsafePointer
        )
    }
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
    /// C++ classes a call passes and returns through a hidden reference
    /// (not trivially copyable: a destructor, a copy constructor or
    /// virtual methods of their own or of a member or base).
    by_reference: std::collections::HashSet<TypeId>,
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

    /// Marks a C++ class as passed by hidden reference.
    pub fn set_by_reference(&mut self, id: TypeId) {
        self.by_reference.insert(id);
    }

    /// Whether calls pass and return `id` by hidden reference (C++).
    pub fn by_reference(&self, id: TypeId) -> bool {
        let mut id = id;
        for _ in 0..32 {
            if self.by_reference.contains(&id) {
                return true;
            }
            match self.types[id].kind {
                TypeKind::Named { underlying } => id = underlying,
                _ => return false,
            }
        }
        false
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
