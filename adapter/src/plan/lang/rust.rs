//! Rust's own calling convention (the `Rust` ABI, as rustc 1.7x–1.9x
//! lowers it to LLVM on x86-64), checked against the code and the DWARF
//! locations rustc generates:
//!
//! * a value whose layout is one scalar (an integer, a float, a `bool`, a
//!   `char`, a thin pointer, a fieldless enum, or a struct or enum that
//!   wraps one) is one argument; a scalar pair (`&str`, `&[T]`,
//!   `&dyn Trait`, `(i32, bool)`, `Option<u32>`, a struct of two scalars)
//!   is two, each taking the next integer or SSE register, or an 8-byte
//!   stack slot once those run out;
//! * any other value (arrays, larger structs and enums) of at most 8
//!   bytes is passed as an integer in one register, and a larger one by
//!   reference: its address takes a register;
//! * results come back the same way in RAX/RDX and XMM0/XMM1, and a
//!   result passed by reference is written through a buffer whose
//!   address the caller passes in RDI and finds in RAX on return;
//! * zero-sized values are not passed at all.
//!
//! Whether a layout is a scalar or a pair is read off the DWARF layout
//! the way rustc decides it: the values' non-zero-sized leaves, their
//! offsets and sizes ([`repr`]).

use super::sysv::{Alloc, SysV};
use super::{Assignment, Assignments, Convention, Loc, RegPiece};
use crate::image::{Image, TypeId, TypeKind, TypeTable};
use crate::plan::site::{Insn, Site};
use crate::plan::{Recipe, Reg};

/// Rust's calling convention.
pub struct Rust;

/// One scalar of a value: its offset and size, and whether it is a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    pub at: u64,
    pub size: u64,
    pub float: bool,
}

impl Leaf {
    fn shifted(self, by: u64) -> Leaf {
        Leaf {
            at: self.at + by,
            ..self
        }
    }

    fn align(self) -> u64 {
        match self.size {
            16 => 16,
            n => n.next_power_of_two().min(8),
        }
    }
}

/// How rustc lays a value out for passing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr {
    /// Zero-sized: not passed.
    Zst,
    Scalar(Leaf),
    Pair(Leaf, Leaf),
    /// Anything else: passed as an integer up to 8 bytes, else by reference.
    Memory,
}

/// The layout class of a value of type `ty`.
pub fn repr(types: &TypeTable, ty: TypeId) -> Repr {
    repr_at(types, ty, 0)
}

fn repr_at(types: &TypeTable, ty: TypeId, depth: u32) -> Repr {
    let t = types.underlying(ty);
    if t.size == 0 {
        return Repr::Zst;
    }
    if depth > 16 {
        return Repr::Memory;
    }
    let scalar = |float| {
        Repr::Scalar(Leaf {
            at: 0,
            size: t.size,
            float,
        })
    };
    match &t.kind {
        k if k.is_integer_scalar() => scalar(false),
        TypeKind::Func { .. } => scalar(false),
        TypeKind::Float => scalar(true),
        TypeKind::Span { ptr, len, cap, .. } if cap.is_none() && t.size == 16 => {
            let (a, b) = (*ptr.min(len) as u64, *ptr.max(len) as u64);
            pair(
                Leaf {
                    at: a,
                    size: 8,
                    float: false,
                },
                Leaf {
                    at: b,
                    size: 8,
                    float: false,
                },
                t.size,
            )
        }
        TypeKind::Dyn { data, vtable } if t.size == 16 => {
            let (a, b) = (*data.min(vtable) as u64, *data.max(vtable) as u64);
            let word = |at| Leaf {
                at,
                size: 8,
                float: false,
            };
            pair(word(a), word(b), t.size)
        }
        TypeKind::Struct { fields } => {
            let leaves: Vec<(u64, Repr)> = fields
                .iter()
                .map(|f| (f.offset, repr_at(types, f.ty, depth + 1)))
                .filter(|(_, r)| *r != Repr::Zst)
                .collect();
            aggregate(&leaves, t.size)
        }
        TypeKind::Variants { discr, variants } => {
            let tagged = variants.iter().all(|v| v.value.is_some());
            let fields_of = |ty: TypeId| -> Option<Vec<(u64, Repr)>> {
                match &types.underlying(ty).kind {
                    TypeKind::Struct { fields } => Some(
                        fields
                            .iter()
                            .map(|f| (f.offset, repr_at(types, f.ty, depth + 1)))
                            .filter(|(_, r)| *r != Repr::Zst)
                            .collect(),
                    ),
                    _ => None,
                }
            };
            if tagged {
                // A tag at offset 0 and, in every variant, at most one
                // scalar, all of one size and kind at one offset.
                let Some(d) = discr.as_ref().filter(|d| d.offset == 0) else {
                    return Repr::Memory;
                };
                let Repr::Scalar(tag) = repr_at(types, d.ty, depth + 1) else {
                    return Repr::Memory;
                };
                let mut common: Option<Leaf> = None;
                for v in variants {
                    let Some(leaves) = fields_of(v.ty) else {
                        return Repr::Memory;
                    };
                    match leaves.as_slice() {
                        [] => {}
                        [(at, Repr::Scalar(l))] => {
                            let l = l.shifted(*at);
                            match common {
                                None => common = Some(l),
                                Some(c) if c == l => {}
                                _ => return Repr::Memory,
                            }
                        }
                        _ => return Repr::Memory,
                    }
                }
                match common {
                    None => Repr::Scalar(tag),
                    Some(prim) => pair(tag, prim, t.size),
                }
            } else {
                // Niche-encoded: the one variant without a value holds
                // the data (and the niche); the others hold nothing.
                let mut dataful = None;
                for v in variants {
                    let Some(leaves) = fields_of(v.ty) else {
                        return Repr::Memory;
                    };
                    match (v.value, leaves.is_empty()) {
                        (Some(_), true) => {}
                        (None, _) if dataful.is_none() => dataful = Some(leaves),
                        _ => return Repr::Memory,
                    }
                }
                match dataful {
                    Some(leaves) => aggregate(&leaves, t.size),
                    None => Repr::Memory,
                }
            }
        }
        _ => Repr::Memory,
    }
}

/// The layout of a struct whose non-zero-sized fields are `leaves`
/// (offset, layout): one scalar or pair filling it is its layout; two
/// scalars laid out as rustc lays out a pair make a pair.
fn aggregate(leaves: &[(u64, Repr)], size: u64) -> Repr {
    match leaves {
        [(0, r @ (Repr::Scalar(_) | Repr::Pair(..)))] => {
            let end = match r {
                Repr::Scalar(l) => l.at + l.size,
                Repr::Pair(_, b) => b.at + b.size,
                _ => 0,
            };
            let align = match r {
                Repr::Scalar(l) => l.align(),
                Repr::Pair(a, b) => a.align().max(b.align()),
                _ => 1,
            };
            match end.div_ceil(align) * align == size {
                true => *r,
                false => Repr::Memory,
            }
        }
        [(x, Repr::Scalar(a)), (y, Repr::Scalar(b))] => {
            let (a, b) = (a.shifted(*x), b.shifted(*y));
            let (a, b) = if a.at <= b.at { (a, b) } else { (b, a) };
            pair(a, b, size)
        }
        _ => Repr::Memory,
    }
}

/// A pair of scalars, if they sit as rustc places a pair: the first at
/// 0, the second at the first's size rounded up to its alignment, and
/// the whole no larger than that rounded to the larger alignment.
fn pair(a: Leaf, b: Leaf, size: u64) -> Repr {
    let b_at = a.size.div_ceil(b.align()) * b.align();
    let align = a.align().max(b.align());
    let end = (b_at + b.size).div_ceil(align) * align;
    match a.at == 0 && b.at == b_at && end == size {
        true => Repr::Pair(a, b),
        false => Repr::Memory,
    }
}

/// A register or stack slot for scalar `l` of an argument.
fn arg_piece(regs: &mut Alloc, l: Leaf, out: &mut Vec<RegPiece>) {
    let mut put = |at: u64, len: u64, loc| {
        out.push(RegPiece {
            at: at as u32,
            len: len as u32,
            loc,
        })
    };
    if l.float {
        match regs.float() {
            Some(x) => put(l.at, l.size, Loc::Float(x)),
            None => put(l.at, l.size, Loc::Stack(regs.slot(l.size, 8))),
        }
    } else if l.size > 8 {
        // i128/u128: two registers, else a 16-aligned slot.
        if regs.fits(2, 0) {
            for half in [0, 8] {
                if let Some(r) = regs.int() {
                    put(l.at + half, 8, Loc::Int(r));
                }
            }
        } else {
            let at = regs.slot(16, 16);
            put(l.at, 8, Loc::Stack(at));
            put(l.at + 8, 8, Loc::Stack(at + 8));
        }
    } else {
        match regs.int() {
            Some(r) => put(l.at, l.size, Loc::Int(r)),
            None => put(l.at, l.size, Loc::Stack(regs.slot(8, 8))),
        }
    }
}

/// Where a result of type `ty` is at `RET`; whether it goes through the
/// caller's buffer (whose address then took RDI at the entry).
fn result(types: &TypeTable, ty: TypeId) -> (Assignment, bool) {
    let size = types.get(ty).size;
    let mut ints = [Reg::Rax, Reg::Rdx].into_iter();
    let mut sses = [0u8, 1].into_iter();
    let mut piece = |l: Leaf, out: &mut Vec<RegPiece>| -> Option<()> {
        if !l.float && l.size > 8 {
            for half in [0, 8] {
                out.push(RegPiece {
                    at: (l.at + half) as u32,
                    len: 8,
                    loc: Loc::Int(ints.next()?),
                });
            }
            return Some(());
        }
        let loc = match l.float {
            true => Loc::Float(sses.next()?),
            false => Loc::Int(ints.next()?),
        };
        out.push(RegPiece {
            at: l.at as u32,
            len: l.size as u32,
            loc,
        });
        Some(())
    };
    let mut out = Vec::new();
    let fits = match repr(types, ty) {
        Repr::Zst => Some(()),
        Repr::Scalar(l) => piece(l, &mut out),
        Repr::Pair(a, b) => piece(a, &mut out).and_then(|_| piece(b, &mut out)),
        Repr::Memory if size <= 8 => piece(
            Leaf {
                at: 0,
                size,
                float: false,
            },
            &mut out,
        ),
        Repr::Memory => None,
    };
    match fits {
        Some(()) => (Assignment::Registers(out), false),
        None => (
            Assignment::Indirect {
                at: Loc::Int(Reg::Rax),
            },
            true,
        ),
    }
}

impl Convention for Rust {
    fn entry_site(&self, insns: &[Insn]) -> Option<Site> {
        SysV.entry_site(insns)
    }

    fn assign(&self, types: &TypeTable, args: &[TypeId], results: &[TypeId]) -> Assignments {
        let r: Vec<(Assignment, bool)> = results.iter().map(|&ty| result(types, ty)).collect();
        let mut regs = Alloc::after(&r);
        let a = args
            .iter()
            .map(|&ty| {
                let mut out = Vec::new();
                match repr(types, ty) {
                    Repr::Zst => {}
                    Repr::Scalar(l) => arg_piece(&mut regs, l, &mut out),
                    Repr::Pair(a, b) => {
                        arg_piece(&mut regs, a, &mut out);
                        arg_piece(&mut regs, b, &mut out);
                    }
                    Repr::Memory => {
                        let size = types.get(ty).size;
                        if size <= 8 {
                            let whole = Leaf {
                                at: 0,
                                size,
                                float: false,
                            };
                            arg_piece(&mut regs, whole, &mut out);
                        } else {
                            return Assignment::Indirect { at: regs.address() };
                        }
                    }
                }
                Assignment::Registers(out)
            })
            .collect();
        (a, r.into_iter().map(|(a, _)| a).collect())
    }

    fn context(&self, image: &Image, recipe: &mut Recipe) {
        SysV.context(image, recipe)
    }

    fn frame_base(&self, image: &Image) -> Option<(Reg, u16)> {
        SysV.frame_base(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Discr, Variant};
    use crate::plan::recipe::tests::{field, ty};

    fn strukt(t: &mut TypeTable, size: u64, fields: &[(u64, TypeId)]) -> TypeId {
        let fields = fields
            .iter()
            .enumerate()
            .map(|(i, &(offset, ty))| field(&format!("__{i}"), offset, ty))
            .collect();
        ty(t, "s", size, TypeKind::Struct { fields })
    }

    fn leaf(at: u64, size: u64, float: bool) -> Leaf {
        Leaf { at, size, float }
    }

    /// The layouts rustc 1.95 gives these types, read from its LLVM IR
    /// (`define … @f(i32 %x.0, i32 %x.1)` is a pair, `ptr %x` by reference).
    #[test]
    fn layouts_match_what_rustc_passes() {
        let mut t = TypeTable::default();
        let u8t = ty(&mut t, "u8", 1, TypeKind::Uint);
        let u32t = ty(&mut t, "u32", 4, TypeKind::Uint);
        let u64t = ty(&mut t, "u64", 8, TypeKind::Uint);
        let f64t = ty(&mut t, "f64", 8, TypeKind::Float);
        let unit = ty(&mut t, "()", 0, TypeKind::Void);
        let p2 = strukt(&mut t, 8, &[(0, u32t), (4, u32t)]);
        assert_eq!(
            repr(&t, p2),
            Repr::Pair(leaf(0, 4, false), leaf(4, 4, false))
        );
        let p3 = strukt(&mut t, 12, &[(0, u32t), (4, u32t), (8, u32t)]);
        assert_eq!(repr(&t, p3), Repr::Memory);
        // {a: u8, d: f64} reordered by rustc: d at 0, a at 8.
        let mix = strukt(&mut t, 16, &[(8, u8t), (0, f64t)]);
        assert_eq!(
            repr(&t, mix),
            Repr::Pair(leaf(0, 8, true), leaf(8, 1, false))
        );
        let newtype = strukt(&mut t, 8, &[(0, u64t), (8, unit)]);
        assert_eq!(repr(&t, newtype), Repr::Scalar(leaf(0, 8, false)));
        let arr = ty(
            &mut t,
            "[u32; 2]",
            8,
            TypeKind::Array {
                elem: Some(u32t),
                count: 2,
            },
        );
        assert_eq!(repr(&t, arr), Repr::Memory);
        // Option<u32>: a tag and the value.
        let none = strukt(&mut t, 8, &[]);
        let some = strukt(&mut t, 8, &[(4, u32t)]);
        let variants = |a, b| {
            vec![
                Variant {
                    name: "None".into(),
                    value: Some(0),
                    ty: a,
                },
                Variant {
                    name: "Some".into(),
                    value: b,
                    ty: some,
                },
            ]
        };
        let opt = ty(
            &mut t,
            "Option<u32>",
            8,
            TypeKind::Variants {
                discr: Some(Discr {
                    offset: 0,
                    ty: u32t,
                }),
                variants: variants(none, Some(1)),
            },
        );
        assert_eq!(
            repr(&t, opt),
            Repr::Pair(leaf(0, 4, false), leaf(4, 4, false))
        );
        // Result<u32, u8>: values of different sizes: memory.
        let err = strukt(&mut t, 8, &[(1, u8t)]);
        let res = ty(
            &mut t,
            "Result<u32, u8>",
            8,
            TypeKind::Variants {
                discr: Some(Discr { offset: 0, ty: u8t }),
                variants: vec![
                    Variant {
                        name: "Ok".into(),
                        value: Some(0),
                        ty: some,
                    },
                    Variant {
                        name: "Err".into(),
                        value: Some(1),
                        ty: err,
                    },
                ],
            },
        );
        assert_eq!(repr(&t, res), Repr::Memory);
        // Option<&u8>: niche-encoded in the pointer.
        let ptr = ty(&mut t, "&u8", 8, TypeKind::Pointer { pointee: Some(u8t) });
        let some_ptr = strukt(&mut t, 8, &[(0, ptr)]);
        let opt_ref = ty(
            &mut t,
            "Option<&u8>",
            8,
            TypeKind::Variants {
                discr: Some(Discr {
                    offset: 0,
                    ty: u64t,
                }),
                variants: vec![
                    Variant {
                        name: "None".into(),
                        value: Some(0),
                        ty: none,
                    },
                    Variant {
                        name: "Some".into(),
                        value: None,
                        ty: some_ptr,
                    },
                ],
            },
        );
        assert_eq!(repr(&t, opt_ref), Repr::Scalar(leaf(0, 8, false)));
    }

    #[test]
    fn pairs_split_across_registers_and_stack_slots() {
        let mut t = TypeTable::default();
        let u32t = ty(&mut t, "u32", 4, TypeKind::Uint);
        let u64t = ty(&mut t, "u64", 8, TypeKind::Uint);
        let p2 = strukt(&mut t, 8, &[(0, u32t), (4, u32t)]);
        let big = strukt(&mut t, 24, &[(0, u64t), (8, u64t), (16, u64t)]);
        // Five integer registers taken, then a pair: its first half in
        // R9, its second in the first stack slot.
        let args = [u64t, u64t, u64t, u64t, u64t, p2];
        let (a, _) = Rust.assign(&t, &args, &[]);
        assert_eq!(
            a[5],
            Assignment::Registers(vec![
                RegPiece {
                    at: 0,
                    len: 4,
                    loc: Loc::Int(Reg::R9)
                },
                RegPiece {
                    at: 4,
                    len: 4,
                    loc: Loc::Stack(0)
                },
            ])
        );
        // A result through the caller's buffer: its address takes RDI.
        let (a, _) = Rust.assign(&t, &args, &[big]);
        assert_eq!(
            a[0],
            Assignment::Registers(vec![RegPiece {
                at: 0,
                len: 8,
                loc: Loc::Int(Reg::Rsi)
            }])
        );
        assert_eq!(
            a[5],
            Assignment::Registers(vec![
                RegPiece {
                    at: 0,
                    len: 4,
                    loc: Loc::Stack(0)
                },
                RegPiece {
                    at: 4,
                    len: 4,
                    loc: Loc::Stack(8)
                },
            ])
        );
        let (a, r) = Rust.assign(&t, &[big], &[p2]);
        assert_eq!(
            a[0],
            Assignment::Indirect {
                at: Loc::Int(Reg::Rdi)
            }
        );
        assert_eq!(
            r[0],
            Assignment::Registers(vec![
                RegPiece {
                    at: 0,
                    len: 4,
                    loc: Loc::Int(Reg::Rax)
                },
                RegPiece {
                    at: 4,
                    len: 4,
                    loc: Loc::Int(Reg::Rdx)
                },
            ])
        );
    }
}
