//! C, C++ and Rust under the System V x86-64 ABI: entry probes on the
//! first instruction (argument registers are valid there), arguments by
//! the register classes of scalars, no runtime context.

use super::{Assignment, Assignments, Convention, Loc, RegPiece};
use crate::image::{Image, TypeId, TypeKind, TypeTable};
use crate::plan::site::{Insn, Site};
use crate::plan::{Recipe, Reg};

/// The System V x86-64 calling convention.
pub struct SysV;

impl Convention for SysV {
    fn entry_site(&self, _: &[Insn]) -> Option<Site> {
        None
    }

    /// Classification for scalar parameters: integers and pointers to RDI,
    /// RSI, RDX, RCX, R8, R9, floats to XMM0–7, the rest (and anything
    /// larger than 8 bytes) on the stack; results in RAX or XMM0.
    fn assign(&self, types: &TypeTable, args: &[TypeId], results: &[TypeId]) -> Assignments {
        let (mut ints, mut floats, mut stack) = (0usize, 0u8, 0u64);
        let piece = |loc, size: u64| {
            Assignment::Registers(vec![RegPiece {
                at: 0,
                len: size as u32,
                loc,
            }])
        };
        let mut a = Vec::new();
        for &ty in args {
            let t = types.underlying(ty);
            let is_float = matches!(t.kind, TypeKind::Float);
            if t.size <= 8 && is_float && floats < 8 {
                a.push(piece(Loc::Float(floats), t.size));
                floats += 1;
            } else if t.size <= 8 && !is_float && ints < Reg::SYSV_INT_ARGS.len() {
                a.push(piece(Loc::Int(Reg::SYSV_INT_ARGS[ints]), t.size));
                ints += 1;
            } else {
                a.push(Assignment::Stack { offset: stack });
                stack += t.size.div_ceil(8) * 8;
            }
        }
        let r = results
            .iter()
            .map(|&ty| {
                let t = types.underlying(ty);
                if matches!(t.kind, TypeKind::Float) {
                    piece(Loc::Float(0), t.size)
                } else {
                    piece(Loc::Int(Reg::Rax), t.size.min(8))
                }
            })
            .collect();
        (a, r)
    }

    fn context(&self, _: &Image, _: &mut Recipe) {}

    fn frame_base(&self, _: &Image) -> Option<(Reg, u16)> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Type;

    #[test]
    fn scalars_take_integer_and_sse_registers_in_order() {
        let mut t = TypeTable::default();
        let mut ty = |name: &str, size, kind| {
            t.push(Type {
                name: name.into(),
                size,
                kind,
            })
        };
        let int = ty("int", 4, TypeKind::Int);
        let double = ty("double", 8, TypeKind::Float);
        let big = ty("struct big", 24, TypeKind::Struct { fields: Vec::new() });
        let reg = |loc, len| Assignment::Registers(vec![RegPiece { at: 0, len, loc }]);
        let (args, results) = SysV.assign(&t, &[int, double, big, int, big], &[double]);
        assert_eq!(args[0], reg(Loc::Int(Reg::Rdi), 4));
        assert_eq!(args[1], reg(Loc::Float(0), 8));
        assert_eq!(args[2], Assignment::Stack { offset: 0 });
        assert_eq!(args[3], reg(Loc::Int(Reg::Rsi), 4));
        assert_eq!(args[4], Assignment::Stack { offset: 24 });
        assert_eq!(results[0], reg(Loc::Float(0), 8));
        let (_, results) = SysV.assign(&t, &[], &[int]);
        assert_eq!(results[0], reg(Loc::Int(Reg::Rax), 4));
    }
}
