//! Conditions checked by the probes themselves: the part of a condition that
//! compares integers, booleans, pointers and strings held in a probe's own
//! captures becomes the recipe's [`Filter`], so a hit it rejects costs no
//! event (under eBPF, nothing leaves the kernel) and no decoding.
//!
//! The adapter still evaluates the whole condition on every hit that
//! arrives, so a filter only has to be sound: it may reject a hit only when
//! the condition rejects it. The top-level conjuncts of `a && b && c` that
//! compile are checked by the backend, the others by the adapter alone.
//! Comparisons follow [`expr`]'s rules exactly: integers by value
//! (signed or unsigned as the variable's type, never mixed), booleans and
//! `nil` pointers by equality, strings by length and bytes.
//!
//! A trace whose calls are filtered must not show the returns of the calls
//! it rejected: its entry probe opens a frame for each call it admits, and
//! its return probes report only returns with an open frame (see
//! [`Pairing`](super::Pairing)); the planner sets that up as it plans the
//! function's probes.

use super::{Buffer, CmpOp, Filter, FilterOp, Recipe, MAX_FILTER_BYTES, MAX_FILTER_OPS};
use crate::expr::{self, Expr, Op, Scalar};
use crate::image::{TypeId, TypeKind, TypeTable};

/// The filter for a probe with `recipe`: the conjuncts of `condition`
/// that compile, or `None` when none does.
pub fn compile(condition: &Expr, recipe: &Recipe, types: &TypeTable) -> Option<Filter> {
    let mut conjuncts = Vec::new();
    split(condition, &mut conjuncts);
    let mut c = Compiler {
        recipe,
        types,
        filter: Filter::default(),
    };
    let mut any = false;
    for e in conjuncts {
        let mark = (c.filter.ops.len(), c.filter.bytes.len(), c.filter.after);
        if c.truth(e).is_some() && c.filter.ops.len() + usize::from(any) <= MAX_FILTER_OPS {
            if any {
                c.filter.ops.push(FilterOp::And);
            }
            any = true;
        } else {
            c.filter.ops.truncate(mark.0);
            c.filter.bytes.truncate(mark.1);
            c.filter.after = mark.2;
        }
    }
    any.then_some(c.filter)
}

fn split<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::And(a, b) => {
            split(a, out);
            split(b, out);
        }
        e => out.push(e),
    }
}

/// An operand as compiled: where its integer comes from.
enum Int {
    /// Pushed by the ops just emitted; `signed` as its Go type.
    Loaded {
        signed: bool,
    },
    Const(i128),
}

struct Compiler<'a> {
    recipe: &'a Recipe,
    types: &'a TypeTable,
    filter: Filter,
}

impl Compiler<'_> {
    fn emit(&mut self, op: FilterOp) -> Option<()> {
        if self.filter.ops.len() >= MAX_FILTER_OPS {
            return None;
        }
        self.filter.ops.push(op);
        Some(())
    }

    /// Emits ops leaving the truth of `e` (0 or 1) on the stack.
    fn truth(&mut self, e: &Expr) -> Option<()> {
        match e {
            Expr::And(a, b) | Expr::Or(a, b) => {
                self.truth(a)?;
                self.truth(b)?;
                self.emit(match e {
                    Expr::And(..) => FilterOp::And,
                    _ => FilterOp::Or,
                })
            }
            Expr::Not(a) => {
                self.truth(a)?;
                self.emit(FilterOp::Not)
            }
            Expr::Lit(Scalar::Bool(b)) => self.emit(FilterOp::Push(u64::from(*b))),
            Expr::Cmp(a, op, b) => self.comparison(a, *op, b),
            path => {
                // A boolean variable or field on its own.
                let (at, ty) = self.place(path)?;
                if !matches!(self.types.underlying(ty).kind, TypeKind::Bool) {
                    return None;
                }
                self.load(at, 1, false)?;
                self.emit(FilterOp::Push(0))?;
                self.emit(FilterOp::Cmp {
                    op: CmpOp::Ne,
                    signed: false,
                })
            }
        }
    }

    fn comparison(&mut self, a: &Expr, op: Op, b: &Expr) -> Option<()> {
        let cmp = op;
        let equality = matches!(op, Op::Eq | Op::Ne);
        match (a, b) {
            (Expr::Lit(Scalar::Str(s)), path) | (path, Expr::Lit(Scalar::Str(s))) if equality => {
                self.string_equals(path, s.as_bytes())?;
                if op == Op::Ne {
                    self.emit(FilterOp::Not)?;
                }
                Some(())
            }
            (Expr::Lit(Scalar::Nil), path) | (path, Expr::Lit(Scalar::Nil)) if equality => {
                let (at, ty) = self.place(path)?;
                if !matches!(
                    self.types.underlying(ty).kind,
                    TypeKind::Pointer { .. } | TypeKind::UnsafePointer
                ) {
                    return None;
                }
                self.load(at, 8, false)?;
                self.emit(FilterOp::Push(0))?;
                self.emit(FilterOp::Cmp {
                    op: cmp,
                    signed: false,
                })
            }
            (Expr::Lit(Scalar::Bool(v)), path) | (path, Expr::Lit(Scalar::Bool(v))) if equality => {
                let (at, ty) = self.place(path)?;
                if !matches!(self.types.underlying(ty).kind, TypeKind::Bool) {
                    return None;
                }
                self.load(at, 1, false)?;
                self.emit(FilterOp::Push(u64::from(*v)))?;
                self.emit(FilterOp::Cmp {
                    op: cmp,
                    signed: false,
                })
            }
            _ => {
                // Integers: each side pushes its value, in order.
                let x = self.int(a)?;
                let y = self.int(b)?;
                let signed = match (&x, &y) {
                    (Int::Loaded { signed: s }, Int::Loaded { signed: t }) if s == t => *s,
                    (Int::Loaded { signed }, Int::Const(c))
                    | (Int::Const(c), Int::Loaded { signed }) => {
                        let fits = match signed {
                            true => i64::try_from(*c).is_ok(),
                            false => u64::try_from(*c).is_ok(),
                        };
                        fits.then_some(*signed)?
                    }
                    _ => return None,
                };
                self.emit(FilterOp::Cmp { op: cmp, signed })
            }
        }
    }

    /// Emits ops pushing the integer `e` stands for.
    fn int(&mut self, e: &Expr) -> Option<Int> {
        match e {
            Expr::Lit(Scalar::Int(c)) => {
                // Pushed as its 64-bit pattern; whether it fits the other
                // side's signedness is checked by the caller.
                self.emit(FilterOp::Push(*c as u64))?;
                Some(Int::Const(*c))
            }
            Expr::Len(inner) => {
                let ((slot, at), ty) = self.place(inner)?;
                match self.types.underlying(ty).kind {
                    TypeKind::String | TypeKind::Slice { .. } => {
                        self.load((slot, at + 8), 8, true)?;
                        Some(Int::Loaded { signed: true })
                    }
                    _ => None,
                }
            }
            path => {
                let (at, ty) = self.place(path)?;
                let t = self.types.underlying(ty);
                let signed = match t.kind {
                    TypeKind::Int => true,
                    TypeKind::Uint => false,
                    _ => return None,
                };
                let size = u8::try_from(t.size)
                    .ok()
                    .filter(|s| [1, 2, 4, 8].contains(s))?;
                self.load(at, size, signed)?;
                Some(Int::Loaded { signed })
            }
        }
    }

    /// `path == "s"`: the length, then the bytes.
    fn string_equals(&mut self, path: &Expr, s: &[u8]) -> Option<()> {
        let ((slot, at), ty) = self.place(path)?;
        if !matches!(self.types.underlying(ty).kind, TypeKind::String) {
            return None;
        }
        self.load((slot, at + 8), 8, true)?;
        self.emit(FilterOp::Push(s.len() as u64))?;
        self.emit(FilterOp::Cmp {
            op: CmpOp::Eq,
            signed: true,
        })?;
        if s.is_empty() {
            return Some(());
        }
        // The capture that copied the string's bytes, and how many it may.
        let v = &self.recipe.values[slot];
        let d = v
            .derefs
            .iter()
            .find(|d| d.from == Buffer::Image && d.at == at && d.start == 0)?;
        let room = self.recipe.captures.get(usize::from(d.capture))?.max_len() as usize;
        let from = self.filter.bytes.len();
        let len = u8::try_from(s.len()).ok()?;
        if s.len() > room || from + s.len() > MAX_FILTER_BYTES {
            return None;
        }
        self.filter.bytes.extend_from_slice(s);
        self.use_capture(d.capture);
        self.emit(FilterOp::Prefix {
            capture: d.capture,
            at: u8::try_from(from).ok()?,
            len,
        })?;
        self.emit(FilterOp::And)
    }

    /// Emits a load of `size` bytes at byte `at` of value slot `slot`'s
    /// image, which must come from one capture.
    fn load(&mut self, (slot, at): (usize, u32), size: u8, signed: bool) -> Option<()> {
        let v = &self.recipe.values[slot];
        let piece = v
            .pieces
            .iter()
            .find(|p| at >= p.at && at + u32::from(size) <= p.at + p.len)?;
        let (capture, offset) = (piece.capture, u16::try_from(at - piece.at).ok()?);
        self.use_capture(capture);
        self.emit(FilterOp::Load {
            capture,
            at: offset,
            size,
            signed,
        })
    }

    fn use_capture(&mut self, c: u16) {
        self.filter.after = self.filter.after.max(c + 1);
    }

    /// The value slot and byte a path names, and its type: a variable, a
    /// captured path (`p.next.val` in a logpoint), or a field of a struct
    /// held in the value itself. The last slot of a name wins, as in
    /// [`expr`]'s evaluation.
    fn place(&self, e: &Expr) -> Option<((usize, u32), TypeId)> {
        let named = |name: &str| {
            self.recipe
                .values
                .iter()
                .rposition(|v| v.name == name)
                .filter(|&i| self.recipe.values[i].unavailable.is_none())
                .and_then(|i| Some(((i, 0), self.recipe.values[i].ty?)))
        };
        match e {
            Expr::Var(name) => named(name),
            Expr::Field(base, field) => {
                if let Some(found) = expr::canonical(e).and_then(|n| named(&n)) {
                    return Some(found);
                }
                let ((slot, at), ty) = self.place(base)?;
                match &self.types.underlying(ty).kind {
                    TypeKind::Struct { fields } => {
                        let f = fields.iter().find(|f| &f.name == field)?;
                        Some(((slot, at + u32::try_from(f.offset).ok()?), f.ty))
                    }
                    _ => None,
                }
            }
            Expr::Deref(_) | Expr::Index(..) => expr::canonical(e).and_then(|n| named(&n)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Type, TypeKind};
    use crate::plan::{Capture, Piece, Reg, ValueSlot};

    /// A recipe with `i int64` in RAX, `u uint32` in RBX, `f float64` in
    /// XMM0 and `s string` in RCX/RDI, its bytes read through RCX.
    fn recipe(types: &mut TypeTable) -> Recipe {
        let mut ty = |name: &str, size, kind| {
            types.push(Type {
                name: name.into(),
                size,
                kind,
            })
        };
        let int = ty("int64", 8, TypeKind::Int);
        let uint = ty("uint32", 4, TypeKind::Uint);
        let float = ty("float64", 8, TypeKind::Float);
        let string = ty("string", 16, TypeKind::String);
        let slot = |name: &str, ty, pieces: Vec<Piece>, size| ValueSlot {
            name: name.into(),
            ty: Some(ty),
            pieces,
            size,
            derefs: Vec::new(),
            unavailable: None,
        };
        let piece = |at, capture| Piece {
            at,
            len: 8,
            capture,
        };
        let mut s = slot("s", string, vec![piece(0, 4), piece(8, 5)], 16);
        s.derefs.push(crate::plan::DerefSlot {
            from: Buffer::Image,
            at: 0,
            capture: 6,
            start: 0,
        });
        Recipe {
            captures: vec![
                Capture::Reg(Reg::R14),
                Capture::Reg(Reg::Rax),
                Capture::Reg(Reg::Rbx),
                Capture::Xmm(0),
                Capture::Reg(Reg::Rcx),
                Capture::Reg(Reg::Rdi),
                Capture::Deref {
                    base: 4,
                    offset: 0,
                    add: 0,
                    len: crate::plan::Len::Counted {
                        capture: 5,
                        offset: 0,
                        scale: 1,
                        max: 8,
                    },
                },
            ],
            values: vec![
                slot("i", int, vec![piece(0, 1)], 8),
                slot("u", uint, vec![piece(0, 2)], 4),
                slot("f", float, vec![piece(0, 3)], 8),
                s,
            ],
            ..Recipe::default()
        }
    }

    fn compiled(condition: &str) -> Option<Filter> {
        let mut types = TypeTable::default();
        let r = recipe(&mut types);
        compile(&expr::parse(condition).expect("parses"), &r, &types)
    }

    #[test]
    fn integer_and_string_conjuncts_compile_the_rest_is_left() {
        let f = compiled(r#"i > -3 && f > 1.5 && s == "go""#).expect("compiles");
        // i > -3, then len(s) == 2 && bytes, joined by one And.
        assert_eq!(f.bytes, b"go");
        assert_eq!(f.after, 7);
        assert!(f.ops.contains(&FilterOp::Cmp {
            op: CmpOp::Gt,
            signed: true
        }));
        assert!(!f
            .ops
            .iter()
            .any(|o| matches!(o, FilterOp::Load { capture: 3, .. })));
        assert_eq!(f.ops.last(), Some(&FilterOp::And));
    }

    #[test]
    fn what_cannot_be_checked_exactly_is_not_compiled() {
        // A negative constant against an unsigned variable, mixed
        // signedness, floats, a string longer than the bytes captured,
        // string ordering, unknown names.
        for c in [
            "u > -1",
            "i == u",
            "f == 2",
            r#"s == "longer than eight""#,
            r#"s < "go""#,
            "nope == 1",
            "u > 4294967296 || f > 0",
        ] {
            assert_eq!(compiled(c), None, "{c}");
        }
        let f = compiled("u >= 7 && !(u == 9)").expect("compiles");
        assert_eq!(f.after, 3);
        assert!(f.ops.contains(&FilterOp::Load {
            capture: 2,
            at: 0,
            size: 4,
            signed: false
        }));
    }
}
