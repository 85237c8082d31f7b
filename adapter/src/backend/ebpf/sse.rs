//! Which XMM registers a probed instruction overwrites.
//!
//! Under eBPF the XMM registers are read from the signal frame the kernel
//! builds when the probe's thread returns to user space (see
//! `bpf/probe.bpf.c`), and a probed instruction the kernel single-steps
//! has run by then. Go's optimized code often starts a function with such
//! an instruction on an argument register (`CVTSS2SD X2, X2`). This module
//! decodes the probed instruction just far enough to say, per XMM
//! register, whether the frame still holds its value at the probe, holds
//! it widened to float64 (exactly invertible), or lost it. Anything it does
//! not recognise as harmless counts as lost: never a wrong value.

/// What the probed instruction did to one XMM register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The low four bytes (a float32) were widened to a float64 in place.
    Widened,
    /// Overwritten: the value at the probe is gone.
    Lost,
}

/// The effect of `insn` on XMM register `reg`, or None when untouched.
pub fn effect(insn: &[u8], reg: u8) -> Option<Effect> {
    let mut i = 0;
    let mut mandatory = 0u8; // 0x66, 0xf2 or 0xf3
    while let Some(&b) = insn.get(i) {
        match b {
            0x66 | 0xf2 | 0xf3 => mandatory = b,
            0x2e | 0x3e | 0x26 | 0x64 | 0x65 | 0x36 | 0xf0 | 0x67 => {}
            _ => break,
        }
        i += 1;
    }
    let mut rex = 0u8;
    match insn.get(i) {
        Some(&b) if b & 0xf0 == 0x40 => {
            rex = b;
            i += 1;
        }
        // VEX and EVEX encodings: not decoded, so assume the worst.
        Some(0xc4 | 0xc5 | 0x62) => return Some(Effect::Lost),
        Some(_) => {}
        None => return Some(Effect::Lost),
    }
    if insn.get(i) != Some(&0x0f) {
        // One-byte opcodes (integer, x87, control flow) leave XMM alone.
        return None;
    }
    let Some(&op) = insn.get(i + 1) else {
        return Some(Effect::Lost);
    };
    // Three-byte opcodes (0F 38, 0F 3A: SSSE3/SSE4): assume the worst.
    if op == 0x38 || op == 0x3a {
        return Some(Effect::Lost);
    }
    // Two-byte opcodes that never write an XMM register.
    let harmless = matches!(op,
        0x00..=0x0f | 0x18..=0x27 | 0x2c..=0x2f | 0x30..=0x4f | 0x50
        | 0x80..=0xc1 | 0xc3 | 0xc5 | 0xc7..=0xcf | 0xd7 | 0xf7);
    if harmless {
        return None;
    }
    let Some(&modrm) = insn.get(i + 2) else {
        return Some(Effect::Lost);
    };
    let dst = ((modrm >> 3) & 7) | if rex & 0x4 != 0 { 8 } else { 0 };
    let rm = (modrm & 7) | if rex & 0x1 != 0 { 8 } else { 0 };
    let rm_is_reg = modrm >> 6 == 3;
    // Stores: the r/m operand is written (an XMM register only when mod
    // is 3 and the opcode's r/m is an XMM register).
    let to_rm = match op {
        0x11 | 0x13 | 0x17 | 0x29 | 0x2b | 0x7f | 0xd6 | 0xe7 => true,
        0x7e if mandatory != 0xf3 => return None, // MOVD/MOVQ to r/m64
        _ => false,
    };
    if to_rm {
        return (rm_is_reg && rm == reg).then_some(Effect::Lost);
    }
    if dst != reg {
        return None;
    }
    // CVTSS2SD xmm, xmm with source and destination the same register.
    if op == 0x5a && mandatory == 0xf3 && rm_is_reg && rm == reg {
        return Some(Effect::Widened);
    }
    Some(Effect::Lost)
}

/// The low eight bytes of a register that was `Widened`, as they were
/// before: the float64 narrowed back to float32 (exact, since it was
/// widened from one), the upper four bytes unknown and left zero.
pub fn narrow(bytes: &[u8]) -> Option<Vec<u8>> {
    let v = f64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let mut out = (v as f32).to_le_bytes().to_vec();
    out.extend_from_slice(&[0; 4]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_entry_instructions_are_classified() {
        // cvtss2sd %xmm2,%xmm2
        assert_eq!(effect(&[0xf3, 0x0f, 0x5a, 0xd2], 2), Some(Effect::Widened));
        assert_eq!(effect(&[0xf3, 0x0f, 0x5a, 0xd2], 3), None);
        // cvtss2sd %xmm3,%xmm2: X2 lost, X3 kept
        assert_eq!(effect(&[0xf3, 0x0f, 0x5a, 0xd3], 2), Some(Effect::Lost));
        assert_eq!(effect(&[0xf3, 0x0f, 0x5a, 0xd3], 3), None);
        // addsd %xmm2,%xmm4
        assert_eq!(effect(&[0xf2, 0x0f, 0x58, 0xe2], 4), Some(Effect::Lost));
        assert_eq!(effect(&[0xf2, 0x0f, 0x58, 0xe2], 2), None);
        // movsd %xmm0,0x18(%rsp): a store to memory
        assert_eq!(effect(&[0xf2, 0x0f, 0x11, 0x44, 0x24, 0x18], 0), None);
        // movups %xmm15,%xmm8 (REX.R and REX.B)
        assert_eq!(effect(&[0x45, 0x0f, 0x10, 0xc7], 8), Some(Effect::Lost));
        // sub $0x10,%rsp; cmp 0x10(%r14),%rsp; jbe; ret
        assert_eq!(effect(&[0x48, 0x83, 0xec, 0x10], 0), None);
        assert_eq!(effect(&[0x49, 0x3b, 0x66, 0x10], 0), None);
        assert_eq!(effect(&[0x0f, 0x86, 0x10, 0, 0, 0], 0), None);
        assert_eq!(effect(&[0xc3], 0), None);
        // VEX: not decoded
        assert_eq!(effect(&[0xc5, 0xf8, 0x77], 0), Some(Effect::Lost));
    }

    #[test]
    fn a_widened_float32_narrows_back_exactly() {
        let wide = f64::from(1.0f32).to_le_bytes();
        let back = narrow(&wide).unwrap();
        assert_eq!(&back[..4], &1.0f32.to_le_bytes());
    }
}
