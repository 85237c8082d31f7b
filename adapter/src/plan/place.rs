//! Where a value's bytes are when its probe fires, as capture steps: at a
//! function's entry or `RET`, from its convention's [`Assignment`]
//! ([`assigned`]); at a line, from the variable's DWARF location pieces
//! ([`located`]). Either way the value's in-memory image is assembled from
//! the [`Piece`]s of its slot.

use super::lang::{Assignment, Loc};
use super::recipe::{push, Builder};
use super::{Capture, Len, Literal, Piece, Recipe, Reg, ValueSlot};
use crate::image::{Place, TypeId, Variable, OPTIMIZED_OUT};

/// Largest stack-assigned value copied whole, in bytes.
pub const MAX_STACK_VALUE: u64 = 4096;

/// An empty slot for a value named `name` of type `ty`.
fn slot(name: &str, ty: Option<TypeId>) -> ValueSlot {
    ValueSlot {
        name: name.to_string(),
        ty,
        pieces: Vec::new(),
        size: 0,
        derefs: Vec::new(),
        unavailable: None,
        literals: Vec::new(),
    }
}

/// The slot of a value the compiler did not keep where the probe fires.
pub fn optimized_out(name: &str, ty: Option<TypeId>) -> ValueSlot {
    let mut s = slot(name, ty);
    s.unavailable = Some(String::from(OPTIMIZED_OUT));
    s
}

/// The capture of a register or of an 8-byte slot of the caller's
/// argument area (at SP+8 at the entry and at `RET`).
fn loc_capture(b: &mut Builder, loc: Loc, len: u32) -> u16 {
    b.push(match loc {
        Loc::Int(r) => Capture::Reg(r),
        Loc::Float(x) => Capture::Xmm(x),
        Loc::Stack(offset) => Capture::Stack {
            offset: 8 + offset as i32,
            len,
        },
    })
}

/// The slot of an argument or result `name` of type `ty` at `loc` (`None`
/// where the convention could not say), its register or stack captures
/// added to the recipe.
pub fn assigned(
    b: &mut Builder,
    name: &str,
    ty: Option<TypeId>,
    loc: Option<&Assignment>,
) -> ValueSlot {
    let mut slot = slot(name, ty);
    match (ty, loc) {
        (Some(ty), Some(loc)) => {
            let size = b.types.get(ty).size;
            slot.size = size as u32;
            match loc {
                Assignment::Registers(pieces) => {
                    for p in pieces {
                        let capture = loc_capture(b, p.loc, p.len);
                        slot.pieces.push(Piece {
                            at: p.at,
                            len: p.len,
                            capture,
                        });
                    }
                }
                Assignment::Indirect { .. } if size > MAX_STACK_VALUE => {
                    slot.unavailable =
                        Some(format!("value of {size} bytes is too large to capture"));
                }
                Assignment::Indirect { at } => {
                    let base = loc_capture(b, *at, 8);
                    let capture = b.push(Capture::Deref {
                        base,
                        offset: 0,
                        add: 0,
                        len: Len::Fixed(size as u32),
                    });
                    slot.pieces.push(Piece {
                        at: 0,
                        len: size as u32,
                        capture,
                    });
                }
                Assignment::Unavailable(why) => slot.unavailable = Some(why.clone()),
                Assignment::Stack { .. } if size > MAX_STACK_VALUE => {
                    slot.unavailable =
                        Some(format!("value of {size} bytes is too large to capture"));
                }
                Assignment::Stack { offset } => {
                    let capture = b.push(Capture::Stack {
                        offset: 8 + *offset as i32,
                        len: size as u32,
                    });
                    slot.pieces.push(Piece {
                        at: 0,
                        len: size as u32,
                        capture,
                    });
                }
            }
        }
        (None, _) => slot.unavailable = Some(String::from("type unknown")),
        (Some(_), None) => slot.unavailable = Some(String::from("location unknown")),
    }
    slot
}

/// The slot of variable `v` of type `ty` at a line, its location pieces
/// captured (`cfa`: the canonical frame address rule there, for locations
/// relative to it). A variable that cannot be read there says why.
pub fn located(
    b: &mut Builder,
    v: &Variable,
    ty: Option<TypeId>,
    cfa: Option<(u16, i64)>,
) -> ValueSlot {
    let mut slot = slot(&v.name, ty);
    match (ty, &v.location) {
        (None, _) => slot.unavailable = Some(String::from("type unknown")),
        (_, Err(why)) => slot.unavailable = Some(why.clone()),
        (Some(ty), Ok(places)) => {
            let size = b.types.get(ty).size;
            slot.size = size as u32;
            let described: u64 = places
                .iter()
                .map(|p| p.size.unwrap_or(u64::MAX))
                .fold(0, u64::saturating_add);
            if size > MAX_STACK_VALUE {
                slot.unavailable = Some(format!("value of {size} bytes is too large to capture"));
            } else if described < size {
                // DWARF leaves the rest undescribed: never zeros instead.
                slot.unavailable = Some(String::from(OPTIMIZED_OUT));
            } else {
                let mut at = 0u32;
                for p in places {
                    let len = p.size.unwrap_or((size as u32).saturating_sub(at) as u64) as u32;
                    if let Place::Bytes(bytes) = &p.place {
                        let n = bytes.len().min(len as usize);
                        slot.literals.push(Literal {
                            at,
                            bytes: bytes[..n].to_vec(),
                        });
                        at += len;
                        continue;
                    }
                    match place_capture(&mut b.recipe, &p.place, len, cfa) {
                        Some(capture) => slot.pieces.push(Piece { at, len, capture }),
                        None => {
                            slot.unavailable =
                                Some(String::from("frame address unknown at this line"));
                            break;
                        }
                    }
                    at += len;
                }
            }
        }
    }
    slot
}

/// The capture reading `len` bytes of a value that lives at `place`;
/// `None` when it is relative to a CFA that is not known.
fn place_capture(
    recipe: &mut Recipe,
    place: &Place,
    len: u32,
    cfa: Option<(u16, i64)>,
) -> Option<u16> {
    // Memory at DWARF register `reg` plus `add`.
    let memory = |recipe: &mut Recipe, reg: u16, add: i64| -> Option<u16> {
        if reg == DWARF_RSP {
            return Some(push(
                recipe,
                Capture::Stack {
                    offset: add as i32,
                    len,
                },
            ));
        }
        let base = push(recipe, Capture::Reg(dwarf_reg(reg)?));
        Some(push(
            recipe,
            Capture::Deref {
                base,
                offset: 0,
                add: add as i32,
                len: Len::Fixed(len),
            },
        ))
    };
    match *place {
        Place::Reg(r @ 17..=32) => Some(push(recipe, Capture::Xmm((r - 17) as u8))),
        Place::Reg(r) => Some(push(recipe, Capture::Reg(dwarf_reg(r)?))),
        Place::RegMem { reg, offset } => memory(recipe, reg, offset),
        Place::Cfa(k) => {
            let (reg, off) = cfa?;
            memory(recipe, reg, off + k)
        }
        Place::Bytes(_) => None,
    }
}

/// DWARF's number for RSP on x86-64.
const DWARF_RSP: u16 = 7;

/// A DWARF x86-64 general-purpose register number as a `pt_regs` register.
pub(super) fn dwarf_reg(n: u16) -> Option<Reg> {
    Some(match n {
        0 => Reg::Rax,
        1 => Reg::Rdx,
        2 => Reg::Rcx,
        3 => Reg::Rbx,
        4 => Reg::Rsi,
        5 => Reg::Rdi,
        6 => Reg::Rbp,
        7 => Reg::Rsp,
        8 => Reg::R8,
        9 => Reg::R9,
        10 => Reg::R10,
        11 => Reg::R11,
        12 => Reg::R12,
        13 => Reg::R13,
        14 => Reg::R14,
        15 => Reg::R15,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{PlacePiece, TypeKind, TypeTable};
    use crate::plan::lang::RegPiece;
    use crate::plan::recipe::tests::ty;
    use crate::plan::Limits;

    #[test]
    fn abi_locations_become_register_and_stack_captures() {
        let mut t = TypeTable::default();
        let string = ty(&mut t, "string", 16, TypeKind::String);
        let float = ty(&mut t, "float64", 8, TypeKind::Float);
        let mut b = Builder::new(&t, Limits::default());
        let regs = Assignment::Registers(vec![
            RegPiece {
                at: 0,
                len: 8,
                loc: Loc::Int(Reg::Rax),
            },
            RegPiece {
                at: 8,
                len: 8,
                loc: Loc::Int(Reg::Rbx),
            },
        ]);
        let s = assigned(&mut b, "s", Some(string), Some(&regs));
        assert_eq!((s.size, s.pieces.len()), (16, 2));
        assert_eq!(
            b.recipe.captures[..2],
            [Capture::Reg(Reg::Rax), Capture::Reg(Reg::Rbx)]
        );
        let xmm = Assignment::Registers(vec![RegPiece {
            at: 0,
            len: 8,
            loc: Loc::Float(3),
        }]);
        assigned(&mut b, "f", Some(float), Some(&xmm));
        assert_eq!(b.recipe.captures[2], Capture::Xmm(3));
        // The caller's argument area starts past the return address.
        let s = assigned(
            &mut b,
            "s",
            Some(string),
            Some(&Assignment::Stack { offset: 16 }),
        );
        assert_eq!(
            b.recipe.captures[3],
            Capture::Stack {
                offset: 24,
                len: 16
            }
        );
        assert_eq!(s.pieces[0].capture, 3);
        let unknown = assigned(&mut b, "u", None, None);
        assert_eq!(unknown.unavailable.as_deref(), Some("type unknown"));
        let lost = assigned(&mut b, "l", Some(float), None);
        assert_eq!(lost.unavailable.as_deref(), Some("location unknown"));
    }

    #[test]
    fn dwarf_locations_become_captures_or_say_why_not() {
        let mut t = TypeTable::default();
        let int = ty(&mut t, "int", 8, TypeKind::Int);
        let mut b = Builder::new(&t, Limits::default());
        let var = |place| Variable {
            name: "x".into(),
            type_ref: None,
            location: Ok(vec![PlacePiece { place, size: None }]),
        };
        // DWARF 0 is RAX, 17 is XMM0; RSP-relative memory is a stack read.
        located(&mut b, &var(Place::Reg(0)), Some(int), None);
        located(&mut b, &var(Place::Reg(18)), Some(int), None);
        located(
            &mut b,
            &var(Place::RegMem { reg: 7, offset: 16 }),
            Some(int),
            None,
        );
        located(&mut b, &var(Place::Cfa(-24)), Some(int), Some((7, 8)));
        assert_eq!(
            b.recipe.captures,
            [
                Capture::Reg(Reg::Rax),
                Capture::Xmm(1),
                Capture::Stack { offset: 16, len: 8 },
                Capture::Stack {
                    offset: -16,
                    len: 8
                },
            ]
        );
        let no_cfa = located(&mut b, &var(Place::Cfa(-24)), Some(int), None);
        assert_eq!(
            no_cfa.unavailable.as_deref(),
            Some("frame address unknown at this line")
        );
        let mut gone = var(Place::Reg(0));
        gone.location = Err("optimized out".into());
        let gone = located(&mut b, &gone, Some(int), None);
        assert_eq!(gone.unavailable.as_deref(), Some("optimized out"));
    }
}
