//! Building one recipe: a [`Builder`] holds the recipe being written and
//! the budget state of the value being followed, for that recipe only
//! (the [`Planner`](super::Planner) that makes many recipes keeps none).
//!
//! Beyond a value's own registers or stack slot, [`Builder::follow`] adds
//! the reads that copy what the value points to at the moment of the call
//! (strings, pointees, slice elements, map buckets (`maps`), an interface's
//! dynamic value), within `Limits` and the recipe budgets of `plan`: each
//! value gets an equal share of what is left ([`Builder::follow_shared`]),
//! so a large first argument cannot starve the others.

use super::{
    Buffer, Capture, DerefSlot, Len, Limits, Recipe, ValueSlot, MAX_CAPTURES, MAX_READ,
    MAX_RECIPE_BYTES,
};
use crate::image::{TypeId, TypeKind, TypeTable};

/// Most bytes of a pointee copied through a pointer.
const MAX_POINTEE: u32 = 4096;
/// Bytes of an interface's data copied: enough for most dynamic values
/// (an error's struct, a boxed number or string header, a small struct).
pub const IFACE_DATA: u32 = 128;
/// Words at the start of an interface's data window that are followed
/// speculatively.
const IFACE_WORDS: u32 = 8;
/// Most bytes read through each word of an interface's data window.
const IFACE_WORD_READ: u32 = 256;
/// Words at the start of each read through the window that are followed
/// once more, when the depth limit allows (a string or an interface in a
/// struct the dynamic value points to: `*fmt.wrapError`'s inner
/// `*errors.errorString`'s text).
const IFACE_DEEP_WORDS: u32 = 4;

/// Capture count and total bytes a recipe may reach while one value is
/// being followed.
#[derive(Debug, Clone, Copy)]
struct Budget {
    captures: usize,
    bytes: u64,
}

/// One recipe being written, with its budget state.
pub struct Builder<'t> {
    pub(super) types: &'t TypeTable,
    pub(super) limits: Limits,
    pub(super) recipe: Recipe,
    /// Where the value being followed must stop adding steps.
    budget: Budget,
    /// Reads through an interface's data window whose first words are
    /// still to be followed, speculatively, with what the value's share
    /// has left once everything typed in it is followed: (capture, bytes
    /// read through each word).
    speculative: Vec<(u16, u32)>,
}

impl<'t> Builder<'t> {
    pub fn new(types: &'t TypeTable, limits: Limits) -> Builder<'t> {
        Builder {
            types,
            limits,
            recipe: Recipe::default(),
            budget: Budget {
                captures: MAX_CAPTURES,
                bytes: MAX_RECIPE_BYTES as u64,
            },
            speculative: Vec::new(),
        }
    }

    /// Appends a step; returns its number.
    pub fn push(&mut self, c: Capture) -> u16 {
        push(&mut self.recipe, c)
    }

    /// The recipe written.
    pub fn finish(self) -> Recipe {
        self.recipe
    }

    /// Follows what the recipe's values point to, each value getting an
    /// equal share of what the budgets have left (what one leaves flows to
    /// the next), so that a large first value cannot starve the others.
    pub fn follow_shared(&mut self) {
        let mut slots = std::mem::take(&mut self.recipe.values);
        let n = slots.len();
        for (i, slot) in slots.iter_mut().enumerate() {
            let Some(ty) = slot.ty.filter(|_| slot.unavailable.is_none()) else {
                continue;
            };
            let left = (n - i) as u64;
            let (steps, bytes) = (self.recipe.captures.len(), recipe_bytes(&self.recipe));
            self.budget = Budget {
                captures: steps + MAX_CAPTURES.saturating_sub(steps) / left as usize,
                bytes: bytes + (MAX_RECIPE_BYTES as u64).saturating_sub(bytes) / left,
            };
            self.follow(slot, ty, Buffer::Image, 0, 0);
            let speculative = std::mem::take(&mut self.speculative);
            'reads: for (c, window) in speculative {
                for k in 0..IFACE_DEEP_WORDS {
                    let to = (Buffer::Capture(c), k * 8, 0);
                    let word = (c, (k * 8) as u16);
                    if self
                        .deref_into(slot, to, word, 0, Len::Fixed(window))
                        .is_none()
                    {
                        break 'reads;
                    }
                }
            }
        }
        self.recipe.values = slots;
    }

    /// Steps the value being followed may still add.
    pub(super) fn steps_left(&self) -> usize {
        self.budget
            .captures
            .saturating_sub(self.recipe.captures.len())
    }

    /// Bytes the value being followed may still have read.
    pub(super) fn room(&self) -> u32 {
        let left = self.budget.bytes.saturating_sub(recipe_bytes(&self.recipe));
        left.min(u32::MAX as u64) as u32
    }

    /// Adds a `Deref` of the pointer at `(capture, offset)`, unless the
    /// current value's share of the budgets ([`MAX_CAPTURES`] steps,
    /// [`MAX_RECIPE_BYTES`] bytes) is used up.
    fn deref(&mut self, (base, offset): (u16, u16), add: i32, len: Len) -> Option<u16> {
        let step = Capture::Deref {
            base,
            offset,
            add,
            len,
        };
        let budget = self.budget;
        if self.recipe.captures.len() >= budget.captures
            || recipe_bytes(&self.recipe) + step.max_len() as u64 > budget.bytes
        {
            return None;
        }
        Some(self.push(step))
    }

    /// [`Self::deref`], recorded in `slot` as the pointer at byte `at` of
    /// `from` being followed (its target captured from byte `start` on).
    pub(super) fn deref_into(
        &mut self,
        slot: &mut ValueSlot,
        (from, at, start): (Buffer, u32, u32),
        ptr: (u16, u16),
        add: i32,
        len: Len,
    ) -> Option<u16> {
        let capture = self.deref(ptr, add, len)?;
        slot.derefs.push(DerefSlot {
            from,
            at,
            capture,
            start,
        });
        Some(capture)
    }

    /// Adds captures for memory the value of type `ty` at byte `at` of
    /// buffer `buf` points to: string bytes, pointees, slice and map
    /// contents, an interface's dynamic type and value, a channel's counts,
    /// a func's code pointer. `depth` counts the indirections already
    /// followed; recursion ends at `Limits::max_depth` and at
    /// [`MAX_CAPTURES`], so recursive types terminate.
    pub(super) fn follow(
        &mut self,
        slot: &mut ValueSlot,
        ty: TypeId,
        buf: Buffer,
        at: u32,
        depth: u32,
    ) {
        let types = self.types;
        let t = types.underlying(ty);
        let limits = self.limits;
        let deeper = depth < limits.max_depth;
        let word = |slot: &ValueSlot, at: u32| -> Option<(u16, u16)> {
            match buf {
                Buffer::Image => locate(slot, at),
                Buffer::Capture(c) => Some((c, u16::try_from(at).ok()?)),
            }
        };
        match &t.kind {
            TypeKind::String => {
                let (Some(ptr), Some(len)) = (word(slot, at), word(slot, at + 8)) else {
                    return;
                };
                let len = Len::Counted {
                    capture: len.0,
                    offset: len.1,
                    scale: 1,
                    max: limits.max_string_len.min(MAX_READ).min(self.room()),
                };
                self.deref_into(slot, (buf, at, 0), ptr, 0, len);
            }
            TypeKind::Struct { fields } => {
                for f in fields {
                    self.follow(slot, f.ty, buf, at + f.offset as u32, depth);
                }
            }
            TypeKind::Array {
                elem: Some(e),
                count,
            } => {
                let size = self.types.get(*e).size as u32;
                let n = (*count).min(limits.max_array_values as u64) as u32;
                for i in 0..n {
                    self.follow(slot, *e, buf, at + i * size, depth);
                }
            }
            TypeKind::Slice { elem: Some(e) } if deeper => {
                let size = self.types.get(*e).size as u32;
                // As many elements as the limit asks, one read holds and
                // this value's share of the budget has room for.
                // Elements that point somewhere leave half the room for
                // what they point to.
                let room = match points(self.types, *e, 0) {
                    true => self.room() / 2,
                    false => self.room(),
                };
                let n = limits
                    .max_array_values
                    .min(MAX_READ.min(room) / size.max(1));
                let (Some(ptr), Some(len)) = (word(slot, at), word(slot, at + 8)) else {
                    return;
                };
                if size == 0 || n == 0 {
                    return;
                }
                let len = Len::Counted {
                    capture: len.0,
                    offset: len.1,
                    scale: size,
                    max: n * size,
                };
                let Some(d) = self.deref_into(slot, (buf, at, 0), ptr, 0, len) else {
                    return;
                };
                for i in 0..n {
                    self.follow(slot, *e, Buffer::Capture(d), i * size, depth + 1);
                }
            }
            TypeKind::Pointer { pointee: Some(p) } if deeper => {
                // A large pointee is copied in part; the decoder shows the
                // fields that fit.
                let size = self.types.get(*p).size.min(MAX_POINTEE as u64) as u32;
                let Some(ptr) = word(slot, at) else { return };
                if size == 0 {
                    return;
                }
                let Some(d) = self.deref_into(slot, (buf, at, 0), ptr, 0, Len::Fixed(size)) else {
                    return;
                };
                self.follow(slot, *p, Buffer::Capture(d), 0, depth + 1);
            }
            TypeKind::Interface { empty } => {
                let (Some(tab), Some(data)) = (word(slot, at), word(slot, at + 8)) else {
                    return;
                };
                if !*empty {
                    // itab._type sits after itab.inter.
                    if self
                        .deref_into(slot, (buf, at, 8), tab, 8, Len::Fixed(8))
                        .is_none()
                    {
                        return;
                    }
                }
                if !deeper {
                    // The dynamic type is named; its value shown by address.
                    return;
                }
                // The dynamic type is known only when the hit is decoded, so
                // a fixed window of the data is copied, and every word of it
                // is followed once more as if it were a pointer (a string's
                // bytes, a pointed-to struct): the decoder uses the reads
                // that the dynamic type makes meaningful.
                let Some(d) =
                    self.deref_into(slot, (buf, at + 8, 0), data, 0, Len::Fixed(IFACE_DATA))
                else {
                    return;
                };
                if depth + 1 < limits.max_depth {
                    let window = limits.max_string_len.clamp(8, IFACE_WORD_READ);
                    for k in 0..IFACE_WORDS {
                        let word = (d, (k * 8) as u16);
                        let to = (Buffer::Capture(d), k * 8, 0);
                        let Some(w) = self.deref_into(slot, to, word, 0, Len::Fixed(window)) else {
                            return;
                        };
                        // One level further only after the rest of the
                        // value: guesses must not starve typed reads.
                        if depth + 2 < limits.max_depth {
                            self.speculative.push((w, window));
                        }
                    }
                }
            }
            TypeKind::Map { hmap: Some(h) } if deeper => {
                if let Some(ptr) = word(slot, at) {
                    self.follow_map(slot, *h, (buf, at), ptr, depth);
                }
            }
            TypeKind::Chan if deeper => {
                // hchan starts with qcount and dataqsiz.
                if let Some(ptr) = word(slot, at) {
                    self.deref_into(slot, (buf, at, 0), ptr, 0, Len::Fixed(16));
                }
            }
            TypeKind::Func => {
                // A func value points to a funcval whose first word is the code.
                if let Some(ptr) = word(slot, at) {
                    self.deref_into(slot, (buf, at, 0), ptr, 0, Len::Fixed(8));
                }
            }
            _ => {}
        }
    }
}

/// Appends a step to `recipe`; returns its number.
pub fn push(recipe: &mut Recipe, c: Capture) -> u16 {
    recipe.captures.push(c);
    (recipe.captures.len() - 1) as u16
}

/// Whether a value of type `ty` holds anything `follow` would read through.
pub(super) fn points(types: &TypeTable, ty: TypeId, depth: u32) -> bool {
    if depth > 8 {
        return true;
    }
    match &types.underlying(ty).kind {
        TypeKind::Struct { fields } => fields.iter().any(|f| points(types, f.ty, depth + 1)),
        TypeKind::Array { elem: Some(e), .. } => points(types, *e, depth + 1),
        TypeKind::String
        | TypeKind::Pointer { .. }
        | TypeKind::Slice { .. }
        | TypeKind::Interface { .. }
        | TypeKind::Map { .. }
        | TypeKind::Chan
        | TypeKind::Func => true,
        _ => false,
    }
}

/// The most bytes a recipe's steps can read in all.
pub(super) fn recipe_bytes(recipe: &Recipe) -> u64 {
    recipe.captures.iter().map(|c| c.max_len() as u64).sum()
}

/// The capture and offset in it that hold byte `at` of a value's image.
pub(super) fn locate(slot: &ValueSlot, at: u32) -> Option<(u16, u16)> {
    slot.pieces
        .iter()
        .find(|p| at >= p.at && at < p.at + p.len)
        .map(|p| (p.capture, (at - p.at) as u16))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::image::{Field, Type};
    use crate::plan::{Piece, Reg};

    pub(crate) fn ty(t: &mut TypeTable, name: &str, size: u64, kind: TypeKind) -> TypeId {
        t.push(Type {
            name: name.into(),
            size,
            kind,
        })
    }

    pub(crate) fn field(name: &str, offset: u64, ty: TypeId) -> Field {
        Field {
            name: name.into(),
            offset,
            ty,
            embedded: false,
        }
    }

    /// A slot named `name` of type `ty` whose image is register captures
    /// of 8 bytes each, pushed now.
    pub(crate) fn in_registers(b: &mut Builder, name: &str, ty: TypeId, words: u32) -> ValueSlot {
        let pieces = (0..words)
            .map(|i| Piece {
                at: i * 8,
                len: 8,
                capture: b.push(Capture::Reg(Reg::GO_INT_ARGS[i as usize])),
            })
            .collect();
        ValueSlot {
            name: name.into(),
            ty: Some(ty),
            pieces,
            size: words * 8,
            derefs: Vec::new(),
            unavailable: None,
        }
    }

    #[test]
    fn a_string_is_read_by_its_length_word_up_to_the_limit() {
        let mut t = TypeTable::default();
        let string = ty(&mut t, "string", 16, TypeKind::String);
        let limits = Limits::default();
        let mut b = Builder::new(&t, limits);
        let slot = in_registers(&mut b, "s", string, 2);
        b.recipe.values.push(slot);
        b.follow_shared();
        let r = b.finish();
        assert_eq!(
            r.captures[2],
            Capture::Deref {
                base: 0,
                offset: 0,
                add: 0,
                len: Len::Counted {
                    capture: 1,
                    offset: 0,
                    scale: 1,
                    max: limits.max_string_len
                }
            }
        );
        let d = r.values[0].derefs[0];
        assert_eq!((d.from, d.at, d.capture), (Buffer::Image, 0, 2));
    }

    #[test]
    fn each_value_gets_its_share_of_the_budgets() {
        let mut t = TypeTable::default();
        let int = ty(&mut t, "int", 8, TypeKind::Int);
        let ints = ty(&mut t, "[]int", 24, TypeKind::Slice { elem: Some(int) });
        let generous = Limits {
            max_string_len: 1 << 20,
            max_array_values: 1 << 20,
            max_depth: 10,
        };
        let mut b = Builder::new(&t, generous);
        for name in ["a", "b", "c"] {
            let slot = in_registers(&mut b, name, ints, 3);
            b.recipe.values.push(slot);
        }
        b.follow_shared();
        let r = b.finish();
        let read = |v: &ValueSlot| r.captures[v.derefs[0].capture as usize].max_len();
        // Each slice could fill the recipe alone: each gets a third of
        // the bytes (to an element), and together they fit.
        let reads: Vec<u32> = r.values.iter().map(read).collect();
        let third = (MAX_RECIPE_BYTES - 9 * 8) / 3;
        for n in &reads {
            assert!(third - 8 <= *n && *n <= third + 8, "{reads:?}");
        }
        assert!(recipe_bytes(&r) <= MAX_RECIPE_BYTES as u64);
    }

    #[test]
    fn pointers_are_followed_to_the_depth_limit_and_cycles_end() {
        let mut t = TypeTable::default();
        let int = ty(&mut t, "int", 8, TypeKind::Int);
        let node = ty(&mut t, "main.Node", 16, TypeKind::Void);
        let ptr = ty(
            &mut t,
            "*main.Node",
            8,
            TypeKind::Pointer {
                pointee: Some(node),
            },
        );
        let fields = vec![field("V", 0, int), field("Next", 8, ptr)];
        t.set(
            node,
            Type {
                name: "main.Node".into(),
                size: 16,
                kind: TypeKind::Struct { fields },
            },
        );
        for depth in [0, 1, 3] {
            let limits = Limits {
                max_depth: depth,
                ..Limits::default()
            };
            let mut b = Builder::new(&t, limits);
            let slot = in_registers(&mut b, "n", ptr, 1);
            b.recipe.values.push(slot);
            b.follow_shared();
            let r = b.finish();
            // One pointee read per level, each from the previous one's Next.
            assert_eq!(r.values[0].derefs.len(), depth as usize, "depth {depth}");
            for (i, d) in r.values[0].derefs.iter().enumerate().skip(1) {
                assert_eq!(d.from, Buffer::Capture(r.values[0].derefs[i - 1].capture));
                assert_eq!(d.at, 8);
            }
        }
    }
}
