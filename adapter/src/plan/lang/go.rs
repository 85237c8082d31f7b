//! Go: entry probes on the stack check's conditional jump, arguments and
//! results by ABIInternal ([`goabi`](super::goabi)), the goroutine id read
//! through `g` (R14) in every recipe, frames named by `g.stack.hi - SP`.

use super::{goabi, Assignments, Convention};
use crate::image::{Image, TypeId, TypeTable};
use crate::plan::recipe::push;
use crate::plan::site::{Insn, Site};
use crate::plan::{Capture, Guard, Len, Recipe, Reg};

/// Go's ABIInternal on amd64 (Go 1.17 and later).
pub struct Go;

impl Convention for Go {
    /// Go functions start with a stack check, `CMP SP|R12, 0x10(R14)` and a
    /// conditional jump to `morestack`. The probe sits on that jump, with a
    /// guard skipping the pass that is about to grow the stack (the
    /// function then runs again from its start): each call is reported
    /// once, with its arguments still in their registers, and a jump is an
    /// instruction the kernel emulates instead of single-stepping.
    /// Functions without a stack check are probed at their first
    /// instruction.
    fn entry_site(&self, insns: &[Insn]) -> Option<Site> {
        let check = insns
            .iter()
            .take(6)
            .position(|i| i.1 == "cmp" && i.2.contains("[r14 + 0x10]"))?;
        let (address, mnemonic, _, bytes) = insns.get(check + 1)?;
        if !mnemonic.starts_with('j') || mnemonic == "jmp" {
            return None;
        }
        let cc = match bytes.as_slice() {
            [b, ..] if (0x70..0x80).contains(b) => b & 0xf,
            [0x0f, b, ..] if (0x80..0x90).contains(b) => b & 0xf,
            _ => return None,
        };
        Some(Site {
            address: *address,
            guard: Some(Guard::UnlessJumpTaken { cc }),
            instruction: Vec::new(),
            scratch: None,
        })
    }

    fn assign(&self, types: &TypeTable, args: &[TypeId], results: &[TypeId]) -> Assignments {
        goabi::assign(types, args, results)
    }

    /// The goroutine id: `g` is in R14, `goid` at the offset
    /// `image::goruntime` read.
    fn context(&self, image: &Image, recipe: &mut Recipe) {
        if let Some(off) = image.g.map(|g| g.goid) {
            let g = push(recipe, Capture::Reg(Reg::R14));
            let goid = push(
                recipe,
                Capture::Deref {
                    base: g,
                    offset: 0,
                    add: off as i32,
                    len: Len::Fixed(8),
                },
            );
            recipe.goid = Some(goid);
        }
    }

    fn frame_base(&self, image: &Image) -> Option<(Reg, u16)> {
        let hi = u16::try_from(image.g?.stack_hi).ok()?;
        Some((Reg::R14, hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insn(address: u64, mnemonic: &str, operands: &str, bytes: &[u8]) -> Insn {
        (address, mnemonic.into(), operands.into(), bytes.to_vec())
    }

    #[test]
    fn the_entry_probe_sits_on_the_stack_checks_jump() {
        let insns = [
            insn(
                0x1000,
                "cmp",
                "rsp, qword ptr [r14 + 0x10]",
                &[0x49, 0x3b, 0x66, 0x10],
            ),
            insn(0x1004, "jbe", "0x1040", &[0x76, 0x3a]),
            insn(0x1006, "sub", "rsp, 0x18", &[0x48, 0x83, 0xec, 0x18]),
        ];
        let site = Go.entry_site(&insns).expect("a site");
        assert_eq!(site.address, 0x1004);
        // JBE is condition code 6 (CF or ZF).
        assert_eq!(site.guard, Some(Guard::UnlessJumpTaken { cc: 6 }));
        // The long form of the jump, 0f 86.
        let mut long = insns.clone();
        long[1] = insn(0x1004, "jbe", "0x1040", &[0x0f, 0x86, 0, 0, 0, 0]);
        let site = Go.entry_site(&long).expect("a site");
        assert_eq!(site.guard, Some(Guard::UnlessJumpTaken { cc: 6 }));
        // A leaf without a stack check: the first instruction.
        assert!(Go.entry_site(&insns[2..]).is_none());
        // A check followed by something else than a conditional jump.
        let mut odd = insns.clone();
        odd[1] = insn(0x1004, "jmp", "0x1040", &[0xeb, 0x3a]);
        assert!(Go.entry_site(&odd).is_none());
    }
}
