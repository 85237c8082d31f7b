//! Go's amd64 register ABI (ABIInternal, Go 1.17 and later): where each
//! argument or result lives at a function's entry or at its `RET`.
//!
//! Follows the assignment algorithm of the Go source tree's
//! `src/cmd/compile/abi-internal.md`: each value is register-assigned as a
//! whole (integers, pointers and the words of strings, slices and interfaces
//! to RAX, RBX, RCX, RDI, RSI, R8–R11; floats and complex halves to X0–X14;
//! structs field by field; arrays of length 0 or 1 only) or, when it does not
//! fit, stack-assigned in the caller's frame; arguments and results are
//! assigned independently, both starting from the first register.

use super::{Assignment, Loc, RegPiece};
use crate::image::{TypeId, TypeKind, TypeTable};
use crate::plan::Reg;

const INT_REGS: usize = 9;
const FLOAT_REGS: usize = 15;

/// The alignment of a type in memory on amd64.
pub fn align_of(table: &TypeTable, ty: TypeId) -> u64 {
    let t = table.underlying(ty);
    match &t.kind {
        TypeKind::Struct { fields } => fields
            .iter()
            .map(|f| align_of(table, f.ty))
            .max()
            .unwrap_or(1),
        TypeKind::Array { elem: Some(e), .. } => align_of(table, *e),
        TypeKind::Complex => (t.size / 2).clamp(1, 8),
        _ => t.size.clamp(1, 8),
    }
}

fn align(x: u64, a: u64) -> u64 {
    x.div_ceil(a.max(1)) * a.max(1)
}

struct State {
    ints: usize,
    floats: usize,
    pieces: Vec<RegPiece>,
}

impl State {
    /// Register-assigns `ty` located at image offset `at`; false when it
    /// does not fit (the caller then rolls back).
    fn assign(&mut self, table: &TypeTable, ty: TypeId, at: u64) -> bool {
        let t = table.underlying(ty);
        let size = t.size;
        match &t.kind {
            TypeKind::Bool
            | TypeKind::Int
            | TypeKind::Uint
            | TypeKind::Pointer { .. }
            | TypeKind::UnsafePointer
            | TypeKind::Map { .. }
            | TypeKind::Chan
            | TypeKind::Func => self.int(at, size.min(8)),
            TypeKind::Float => self.float(at, size),
            TypeKind::Complex => self.float(at, size / 2) && self.float(at + size / 2, size / 2),
            TypeKind::String | TypeKind::Interface { .. } => self.int(at, 8) && self.int(at + 8, 8),
            TypeKind::Slice { .. } => {
                self.int(at, 8) && self.int(at + 8, 8) && self.int(at + 16, 8)
            }
            TypeKind::Struct { fields } => fields
                .iter()
                .all(|f| self.assign(table, f.ty, at + f.offset)),
            TypeKind::Array { count: 0, .. } => true,
            TypeKind::Array {
                count: 1,
                elem: Some(e),
            } => self.assign(table, *e, at),
            TypeKind::Void => true,
            _ => false,
        }
    }

    fn int(&mut self, at: u64, len: u64) -> bool {
        if self.ints >= INT_REGS {
            return false;
        }
        self.pieces.push(RegPiece {
            at: at as u32,
            len: len as u32,
            loc: Loc::Int(Reg::GO_INT_ARGS[self.ints]),
        });
        self.ints += 1;
        true
    }

    fn float(&mut self, at: u64, len: u64) -> bool {
        if self.floats >= FLOAT_REGS {
            return false;
        }
        self.pieces.push(RegPiece {
            at: at as u32,
            len: len as u32,
            loc: Loc::Float(self.floats as u8),
        });
        self.floats += 1;
        true
    }
}

/// Assigns a parameter list (arguments, or results) starting from the first
/// registers; `stack_base` is where this list's stack area begins.
fn assign_list(table: &TypeTable, tys: &[TypeId], stack: &mut u64) -> Vec<Assignment> {
    let mut state = State {
        ints: 0,
        floats: 0,
        pieces: Vec::new(),
    };
    let mut out = Vec::with_capacity(tys.len());
    for &ty in tys {
        let (ints, floats) = (state.ints, state.floats);
        state.pieces.clear();
        if state.assign(table, ty, 0) {
            out.push(Assignment::Registers(std::mem::take(&mut state.pieces)));
        } else {
            state.ints = ints;
            state.floats = floats;
            *stack = align(*stack, align_of(table, ty));
            out.push(Assignment::Stack { offset: *stack });
            *stack += table.get(ty).size;
        }
    }
    out
}

/// Where the arguments and the results of a Go function live.
pub fn assign(
    table: &TypeTable,
    args: &[TypeId],
    results: &[TypeId],
) -> (Vec<Assignment>, Vec<Assignment>) {
    let mut stack = 0u64;
    let a = assign_list(table, args, &mut stack);
    stack = align(stack, 8);
    let r = assign_list(table, results, &mut stack);
    (a, r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Field, Type};

    fn table() -> (TypeTable, TypeId, TypeId, TypeId) {
        let mut t = TypeTable::default();
        let int = t.push(Type {
            name: "int".into(),
            size: 8,
            kind: TypeKind::Int,
        });
        let f64_ = t.push(Type {
            name: "float64".into(),
            size: 8,
            kind: TypeKind::Float,
        });
        let string = t.push(Type {
            name: "string".into(),
            size: 16,
            kind: TypeKind::String,
        });
        (t, int, f64_, string)
    }

    #[test]
    fn ints_floats_and_strings_take_their_own_registers() {
        let (t, int, f, s) = table();
        let (args, results) = assign(&t, &[int, f, s, int], &[int, s]);
        assert_eq!(
            args[2],
            Assignment::Registers(vec![
                RegPiece {
                    at: 0,
                    len: 8,
                    loc: Loc::Int(Reg::Rbx)
                },
                RegPiece {
                    at: 8,
                    len: 8,
                    loc: Loc::Int(Reg::Rcx)
                },
            ])
        );
        assert_eq!(
            args[1],
            Assignment::Registers(vec![RegPiece {
                at: 0,
                len: 8,
                loc: Loc::Float(0)
            }])
        );
        assert_eq!(
            args[3],
            Assignment::Registers(vec![RegPiece {
                at: 0,
                len: 8,
                loc: Loc::Int(Reg::Rdi)
            }])
        );
        // Results start over at RAX.
        assert_eq!(
            results[0],
            Assignment::Registers(vec![RegPiece {
                at: 0,
                len: 8,
                loc: Loc::Int(Reg::Rax)
            }])
        );
    }

    #[test]
    fn a_value_that_does_not_fit_goes_whole_to_the_stack() {
        let (mut t, int, _, s) = table();
        let big = t.push(Type {
            name: "main.Big".into(),
            size: 80,
            kind: TypeKind::Struct {
                fields: (0..10)
                    .map(|i| Field {
                        name: format!("F{i}"),
                        offset: i * 8,
                        ty: int,
                        embedded: false,
                    })
                    .collect(),
            },
        });
        let (args, _) = assign(&t, &[int, big, s], &[]);
        assert!(matches!(args[0], Assignment::Registers(_)));
        assert_eq!(args[1], Assignment::Stack { offset: 0 });
        // The string still gets registers after the struct was rolled back.
        assert_eq!(
            args[2],
            Assignment::Registers(vec![
                RegPiece {
                    at: 0,
                    len: 8,
                    loc: Loc::Int(Reg::Rbx)
                },
                RegPiece {
                    at: 8,
                    len: 8,
                    loc: Loc::Int(Reg::Rcx)
                },
            ])
        );
        let tenth: Vec<TypeId> = vec![int; 10];
        let (args, results) = assign(&t, &tenth, &[int; 10]);
        assert_eq!(args[9], Assignment::Stack { offset: 0 });
        assert_eq!(results[9], Assignment::Stack { offset: 8 });
    }
}
