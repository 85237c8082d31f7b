//! C and C++ under the System V x86-64 ABI: entry probes on the first
//! instruction (argument registers are valid there), no runtime context,
//! and arguments and results classified as the ABI does (§3.2.3): each
//! eightbyte of a value up to 16 bytes is INTEGER or SSE by the scalars in
//! it, and travels in the next of RDI, RSI, RDX, RCX, R8, R9 or of
//! XMM0–7 (results: RAX, RDX, XMM0, XMM1); larger values and those with
//! an x87 part (`long double`) are MEMORY: on the stack as arguments, and
//! as a result written through a buffer the caller passes in RDI, whose
//! address comes back in RAX. C++ passes a class that is not trivially
//! copyable by reference and returns it through that buffer too.
//!
//! [`Alloc`] hands out registers and stack slots in order; Rust's
//! convention (`rust`) uses it as well.

use super::{Assignment, Assignments, Convention, Loc, RegPiece};
use crate::image::{Image, TypeId, TypeKind, TypeTable};
use crate::plan::site::{Insn, Site};
use crate::plan::{Recipe, Reg};

/// The System V x86-64 calling convention.
pub struct SysV;

/// The registers and stack slots of one argument list, handed out in order.
#[derive(Debug, Default)]
pub(super) struct Alloc {
    ints: usize,
    floats: u8,
    /// Bytes of the caller's argument area used so far.
    stack: u64,
}

impl Alloc {
    /// The registers of an argument list whose results go to `results`
    /// (each with whether it is returned through the caller's buffer):
    /// the buffer's address takes the first integer register.
    pub fn after(results: &[(Assignment, bool)]) -> Alloc {
        let mut regs = Alloc::default();
        if results.iter().any(|(_, buffer)| *buffer) {
            regs.int();
        }
        regs
    }

    /// Where the address of an argument passed by reference goes: the
    /// next integer register, else a stack slot.
    pub fn address(&mut self) -> Loc {
        match self.int() {
            Some(r) => Loc::Int(r),
            None => Loc::Stack(self.slot(8, 8)),
        }
    }

    /// Whether `ints` more integer and `floats` more SSE registers are free.
    pub fn fits(&self, ints: usize, floats: u8) -> bool {
        self.ints + ints <= Reg::SYSV_INT_ARGS.len() && self.floats + floats <= 8
    }

    /// The next integer register, if any.
    pub fn int(&mut self) -> Option<Reg> {
        let r = Reg::SYSV_INT_ARGS.get(self.ints).copied()?;
        self.ints += 1;
        Some(r)
    }

    /// The next SSE register, if any.
    pub fn float(&mut self) -> Option<u8> {
        (self.floats < 8).then(|| {
            self.floats += 1;
            self.floats - 1
        })
    }

    /// A slot of `size` bytes in the caller's argument area, aligned to
    /// `align` (at least 8): its offset.
    pub fn slot(&mut self, size: u64, align: u64) -> u64 {
        let align = align.max(8);
        let at = self.stack.div_ceil(align) * align;
        self.stack = at + size.div_ceil(8) * 8;
        at
    }
}

/// The ABI class of one eightbyte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    None,
    Integer,
    Sse,
    /// The x87 part of a `long double`.
    X87,
    Memory,
}

impl Class {
    fn merge(self, other: Class) -> Class {
        use Class::*;
        match (self, other) {
            (a, b) if a == b => a,
            (None, b) => b,
            (a, None) => a,
            (Memory, _) | (_, Memory) => Memory,
            (Integer, _) | (_, Integer) => Integer,
            (X87, _) | (_, X87) => Memory,
            _ => Sse,
        }
    }
}

/// The classes of the eightbytes of a value of type `ty`; `None` when it
/// is passed in memory (larger than 16 bytes, unaligned, or of a kind the
/// ABI does not put in registers).
fn classify(types: &TypeTable, ty: TypeId) -> Option<Vec<Class>> {
    let size = types.get(ty).size;
    if size > 16 {
        return None;
    }
    let mut classes = vec![Class::None; size.div_ceil(8) as usize];
    walk(types, ty, 0, &mut classes, 0)?;
    if classes.contains(&Class::Memory) {
        return None;
    }
    Some(classes)
}

/// Merges the classes of the scalars of `ty` (at byte `at`) into `out`.
fn walk(types: &TypeTable, ty: TypeId, at: u64, out: &mut [Class], depth: u32) -> Option<()> {
    if depth > 16 {
        return None;
    }
    let t = types.underlying(ty);
    let mut scalar = |class: Class, size: u64| -> Option<()> {
        if size == 0 {
            return Some(());
        }
        // A scalar across two eightbytes is unaligned: MEMORY.
        let (first, last) = (at / 8, (at + size - 1) / 8);
        if first != last && size <= 8 {
            return None;
        }
        for i in first..=last {
            let c = out.get_mut(i as usize)?;
            *c = c.merge(class);
        }
        Some(())
    };
    match &t.kind {
        k if k.is_integer_scalar() => scalar(Class::Integer, t.size),
        TypeKind::Bits { .. } => scalar(Class::Integer, t.size),
        TypeKind::Float if t.size > 8 => {
            // `long double`: the x87 mantissa and exponent.
            scalar(Class::X87, t.size)
        }
        TypeKind::Float => scalar(Class::Sse, t.size),
        TypeKind::Complex => {
            let half = t.size / 2;
            if half > 8 {
                return None;
            }
            walk_half(out, at, half)?;
            walk_half(out, at + half, half)
        }
        TypeKind::Struct { fields } => {
            for f in fields {
                walk(types, f.ty, at + f.offset, out, depth + 1)?;
            }
            Some(())
        }
        TypeKind::Array {
            elem: Some(e),
            count,
        } => {
            let esize = types.get(*e).size;
            for i in 0..*count {
                walk(types, *e, at + i * esize, out, depth + 1)?;
            }
            Some(())
        }
        TypeKind::Void => Some(()),
        _ => None,
    }
}

/// One SSE half of a `_Complex` value.
fn walk_half(out: &mut [Class], at: u64, size: u64) -> Option<()> {
    let (first, last) = (at / 8, (at + size.max(1) - 1) / 8);
    for i in first..=last {
        let c = out.get_mut(i as usize)?;
        *c = c.merge(Class::Sse);
    }
    Some(())
}

/// The alignment of a C type in memory.
fn align_of(types: &TypeTable, ty: TypeId, depth: u32) -> u64 {
    let t = types.underlying(ty);
    match &t.kind {
        _ if depth > 16 => 8,
        TypeKind::Struct { fields } => fields
            .iter()
            .map(|f| align_of(types, f.ty, depth + 1))
            .max()
            .unwrap_or(1),
        TypeKind::Array { elem: Some(e), .. } => align_of(types, *e, depth + 1),
        TypeKind::Complex => (t.size / 2).clamp(1, 16),
        _ => t.size.clamp(1, 16),
    }
}

/// The pieces of a value whose eightbytes have `classes`, each in the
/// register `next` gives for its class (`true`: SSE).
fn pieces(
    size: u64,
    classes: &[Class],
    mut next: impl FnMut(bool) -> Option<Loc>,
) -> Option<Vec<RegPiece>> {
    let mut out = Vec::new();
    for (i, c) in classes.iter().enumerate() {
        let at = i as u64 * 8;
        let len = (size - at).min(8) as u32;
        let loc = match c {
            Class::Integer => next(false)?,
            Class::Sse => next(true)?,
            // Padding only.
            Class::None => continue,
            Class::X87 | Class::Memory => return None,
        };
        out.push(RegPiece {
            at: at as u32,
            len,
            loc,
        });
    }
    Some(out)
}

/// Where a C or C++ result of type `ty` is at `RET`; whether it is
/// returned through the caller's buffer (then RDI held the buffer's
/// address at the entry).
fn result(types: &TypeTable, ty: TypeId) -> (Assignment, bool) {
    let size = types.get(ty).size;
    if size == 0 {
        return (Assignment::Registers(Vec::new()), false);
    }
    let indirect = (
        Assignment::Indirect {
            at: Loc::Int(Reg::Rax),
        },
        true,
    );
    if types.by_reference(ty) {
        return indirect;
    }
    let Some(classes) = classify(types, ty) else {
        return indirect;
    };
    let t = types.underlying(ty);
    if matches!(t.kind, TypeKind::Float) && t.size > 8 {
        return (
            Assignment::Unavailable(String::from("a long double result is in an x87 register")),
            false,
        );
    }
    let mut ints = [Reg::Rax, Reg::Rdx].into_iter();
    let mut sses = [0u8, 1].into_iter();
    let next = |sse: bool| match sse {
        true => sses.next().map(Loc::Float),
        false => ints.next().map(Loc::Int),
    };
    match pieces(size, &classes, next) {
        Some(p) => (Assignment::Registers(p), false),
        None => indirect,
    }
}

impl Convention for SysV {
    fn entry_site(&self, _: &[Insn]) -> Option<Site> {
        None
    }

    fn assign(&self, types: &TypeTable, args: &[TypeId], results: &[TypeId]) -> Assignments {
        let r: Vec<(Assignment, bool)> = results.iter().map(|&ty| result(types, ty)).collect();
        let mut regs = Alloc::after(&r);
        let a = args
            .iter()
            .map(|&ty| {
                let size = types.get(ty).size;
                if types.by_reference(ty) {
                    return Assignment::Indirect { at: regs.address() };
                }
                if let Some(classes) = classify(types, ty) {
                    let ints = classes.iter().filter(|c| **c == Class::Integer).count();
                    let sses = classes.iter().filter(|c| **c == Class::Sse).count() as u8;
                    // A value whose eightbytes do not all fit in the
                    // registers left goes on the stack whole.
                    if regs.fits(ints, sses) {
                        let next = |sse: bool| match sse {
                            true => regs.float().map(Loc::Float),
                            false => regs.int().map(Loc::Int),
                        };
                        if let Some(p) = pieces(size, &classes, next) {
                            return Assignment::Registers(p);
                        }
                    }
                }
                Assignment::Stack {
                    offset: regs.slot(size, align_of(types, ty, 0)),
                }
            })
            .collect();
        (a, r.into_iter().map(|(a, _)| a).collect())
    }

    fn context(&self, _: &Image, _: &mut Recipe) {}

    fn frame_base(&self, _: &Image) -> Option<(Reg, u16)> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::recipe::tests::{field, ty};

    fn strukt(t: &mut TypeTable, name: &str, size: u64, fields: &[(u64, TypeId)]) -> TypeId {
        let fields = fields
            .iter()
            .enumerate()
            .map(|(i, &(offset, ty))| field(&format!("f{i}"), offset, ty))
            .collect();
        ty(t, name, size, TypeKind::Struct { fields })
    }

    fn reg(pieces: &[(u32, u32, Loc)]) -> Assignment {
        Assignment::Registers(
            pieces
                .iter()
                .map(|&(at, len, loc)| RegPiece { at, len, loc })
                .collect(),
        )
    }

    #[test]
    fn scalars_take_integer_and_sse_registers_in_order() {
        let mut t = TypeTable::default();
        let int = ty(&mut t, "int", 4, TypeKind::Int);
        let double = ty(&mut t, "double", 8, TypeKind::Float);
        let big = ty(
            &mut t,
            "struct big",
            24,
            TypeKind::Struct { fields: Vec::new() },
        );
        let (args, results) = SysV.assign(&t, &[int, double, big, int, big], &[double]);
        assert_eq!(args[0], reg(&[(0, 4, Loc::Int(Reg::Rdi))]));
        assert_eq!(args[1], reg(&[(0, 8, Loc::Float(0))]));
        assert_eq!(args[2], Assignment::Stack { offset: 0 });
        assert_eq!(args[3], reg(&[(0, 4, Loc::Int(Reg::Rsi))]));
        assert_eq!(args[4], Assignment::Stack { offset: 24 });
        assert_eq!(results[0], reg(&[(0, 8, Loc::Float(0))]));
        let (_, results) = SysV.assign(&t, &[], &[int]);
        assert_eq!(results[0], reg(&[(0, 4, Loc::Int(Reg::Rax))]));
    }

    #[test]
    fn small_structs_travel_by_eightbyte_class() {
        let mut t = TypeTable::default();
        let int = ty(&mut t, "int", 4, TypeKind::Int);
        let long = ty(&mut t, "long", 8, TypeKind::Int);
        let float = ty(&mut t, "float", 4, TypeKind::Float);
        let double = ty(&mut t, "double", 8, TypeKind::Float);
        let point = strukt(&mut t, "struct point", 8, &[(0, int), (4, int)]);
        let vec2 = strukt(&mut t, "struct vec2", 16, &[(0, double), (8, double)]);
        let mixed = strukt(&mut t, "struct mixed", 16, &[(0, int), (8, double)]);
        let trio = strukt(&mut t, "struct trio", 12, &[(0, int), (4, int), (8, int)]);
        let floats = strukt(&mut t, "struct floats", 8, &[(0, float), (4, float)]);
        let big = strukt(
            &mut t,
            "struct big",
            24,
            &[(0, long), (8, long), (16, long)],
        );
        let (args, _) = SysV.assign(&t, &[point, vec2, mixed, trio, floats], &[]);
        assert_eq!(args[0], reg(&[(0, 8, Loc::Int(Reg::Rdi))]));
        assert_eq!(
            args[1],
            reg(&[(0, 8, Loc::Float(0)), (8, 8, Loc::Float(1))])
        );
        assert_eq!(
            args[2],
            reg(&[(0, 8, Loc::Int(Reg::Rsi)), (8, 8, Loc::Float(2))])
        );
        assert_eq!(
            args[3],
            reg(&[(0, 8, Loc::Int(Reg::Rdx)), (8, 4, Loc::Int(Reg::Rcx))])
        );
        assert_eq!(args[4], reg(&[(0, 8, Loc::Float(3))]));
        // A struct result over 16 bytes: through the caller's buffer,
        // whose address takes RDI.
        let (args, results) = SysV.assign(&t, &[long], &[big]);
        assert_eq!(args[0], reg(&[(0, 8, Loc::Int(Reg::Rsi))]));
        assert_eq!(
            results[0],
            Assignment::Indirect {
                at: Loc::Int(Reg::Rax)
            }
        );
        // {long, double}: RAX and XMM0; {double, double}: XMM0 and XMM1.
        let ld = strukt(&mut t, "struct ld", 16, &[(0, long), (8, double)]);
        let (_, results) = SysV.assign(&t, &[], &[ld]);
        assert_eq!(
            results[0],
            reg(&[(0, 8, Loc::Int(Reg::Rax)), (8, 8, Loc::Float(0))])
        );
        let (_, results) = SysV.assign(&t, &[], &[vec2]);
        assert_eq!(
            results[0],
            reg(&[(0, 8, Loc::Float(0)), (8, 8, Loc::Float(1))])
        );
    }

    #[test]
    fn a_struct_that_does_not_fit_the_registers_left_goes_on_the_stack_whole() {
        let mut t = TypeTable::default();
        let long = ty(&mut t, "long", 8, TypeKind::Int);
        let pair = strukt(&mut t, "struct pair", 16, &[(0, long), (8, long)]);
        let args: Vec<TypeId> = [long, long, long, long, long, pair, long].to_vec();
        let (a, _) = SysV.assign(&t, &args, &[]);
        assert_eq!(a[5], Assignment::Stack { offset: 0 });
        // The register it left is still given to the next argument.
        assert_eq!(a[6], reg(&[(0, 8, Loc::Int(Reg::R9))]));
    }

    #[test]
    fn cxx_classes_that_copy_with_code_go_by_reference() {
        let mut t = TypeTable::default();
        let long = ty(&mut t, "long", 8, TypeKind::Int);
        let s = strukt(&mut t, "std::string", 32, &[(0, long)]);
        t.set_by_reference(s);
        let (a, r) = SysV.assign(&t, &[s, long], &[s]);
        assert_eq!(
            a[0],
            Assignment::Indirect {
                at: Loc::Int(Reg::Rsi)
            }
        );
        assert_eq!(a[1], reg(&[(0, 8, Loc::Int(Reg::Rdx))]));
        assert_eq!(
            r[0],
            Assignment::Indirect {
                at: Loc::Int(Reg::Rax)
            }
        );
    }
}
