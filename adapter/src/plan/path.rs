//! The paths of a logpoint's expressions (`p.next.val`, `*p`, `xs[3]`):
//! each that goes through a pointer or a slice is read when the probe
//! fires, into a value slot of its own, because the memory behind a
//! pointer is only readable then.

use super::place::MAX_STACK_VALUE;
use super::recipe::{locate, push, Builder};
use super::{Capture, Len, Path, PathStep, Piece, Recipe, ValueSlot};
use crate::image::TypeKind;

/// Where the bytes of a value being followed along a path are.
#[derive(Clone, Copy)]
enum At {
    /// Inside the base variable's image, at this byte.
    Image(u32),
    /// In memory at the pointer found at byte `offset` of capture `capture`,
    /// plus `add`; not read yet.
    Memory { capture: u16, offset: u16, add: i64 },
}

impl At {
    /// `n` bytes further on.
    fn plus(self, n: u64) -> At {
        match self {
            At::Image(o) => At::Image(o + n as u32),
            At::Memory {
                capture,
                offset,
                add,
            } => At::Memory {
                capture,
                offset,
                add: add + n as i64,
            },
        }
    }
}

impl Builder<'_> {
    /// A slot for `path`; `None` if the path never leaves its variable.
    pub(super) fn path(&mut self, path: &Path) -> Option<ValueSlot> {
        let types = self.types;
        let unavailable = |why: String| ValueSlot {
            name: path.name.clone(),
            ty: None,
            pieces: Vec::new(),
            size: 0,
            derefs: Vec::new(),
            unavailable: Some(why),
        };
        // The innermost variable of that name (later ones shadow earlier).
        let base = self
            .recipe
            .values
            .iter()
            .rev()
            .find(|v| v.name == path.base)?;
        if let Some(why) = &base.unavailable {
            return Some(unavailable(format!("{}: {why}", path.base)));
        }
        let mut ty = base.ty?;
        let base = base.clone();
        let mut at = At::Image(0);
        let mut left_image = false;
        // The (capture, offset) holding the 8 bytes at `at`, reading memory
        // into a capture when needed.
        let pointer_at = |recipe: &mut Recipe, at: At| -> Option<(u16, u16)> {
            match at {
                At::Image(o) => locate(&base, o),
                At::Memory {
                    capture,
                    offset,
                    add,
                } => {
                    let c = push(
                        recipe,
                        Capture::Deref {
                            base: capture,
                            offset,
                            add: add as i32,
                            len: Len::Fixed(8),
                        },
                    );
                    Some((c, 0))
                }
            }
        };
        for step in &path.steps {
            let t = types.underlying(ty).clone();
            match (step, &t.kind) {
                (PathStep::Deref, TypeKind::Pointer { pointee: Some(p) }) => {
                    let Some((capture, offset)) = pointer_at(&mut self.recipe, at) else {
                        return Some(unavailable(String::from("pointer not captured")));
                    };
                    at = At::Memory {
                        capture,
                        offset,
                        add: 0,
                    };
                    ty = *p;
                    left_image = true;
                }
                (PathStep::Field(name), TypeKind::Pointer { pointee: Some(p) }) => {
                    let inner = types.underlying(*p);
                    let TypeKind::Struct { fields } = &inner.kind else {
                        return Some(unavailable(format!("{} has no field {name}", t.name)));
                    };
                    let Some(f) = fields.iter().find(|f| &f.name == name) else {
                        return Some(unavailable(format!("{} has no field {name}", inner.name)));
                    };
                    let Some((capture, offset)) = pointer_at(&mut self.recipe, at) else {
                        return Some(unavailable(String::from("pointer not captured")));
                    };
                    at = At::Memory {
                        capture,
                        offset,
                        add: f.offset as i64,
                    };
                    ty = f.ty;
                    left_image = true;
                }
                (PathStep::Field(name), TypeKind::Struct { fields }) => {
                    let Some(f) = fields.iter().find(|f| &f.name == name) else {
                        return Some(unavailable(format!("{} has no field {name}", t.name)));
                    };
                    at = at.plus(f.offset);
                    ty = f.ty;
                }
                (
                    PathStep::Index(i),
                    TypeKind::Array {
                        elem: Some(e),
                        count,
                    },
                ) => {
                    if i >= count {
                        return Some(unavailable(format!("index {i} out of range [0:{count}]")));
                    }
                    let size = types.get(*e).size;
                    at = at.plus(i * size);
                    ty = *e;
                }
                (PathStep::Index(i), TypeKind::Slice { elem: Some(e) }) => {
                    // The data pointer is the slice's first word. The
                    // length is not checked here: the element is read
                    // from the backing array, which holds at least `cap`.
                    let Some((capture, offset)) = pointer_at(&mut self.recipe, at) else {
                        return Some(unavailable(String::from("slice not captured")));
                    };
                    let size = types.get(*e).size;
                    at = At::Memory {
                        capture,
                        offset,
                        add: (i * size) as i64,
                    };
                    ty = *e;
                    left_image = true;
                }
                (step, _) => {
                    let what = match step {
                        PathStep::Field(f) => format!("no field {f}"),
                        PathStep::Deref => String::from("nothing to dereference"),
                        PathStep::Index(i) => format!("no element [{i}] to read"),
                    };
                    return Some(unavailable(format!("{}: {what}", t.name)));
                }
            }
        }
        if !left_image {
            return None;
        }
        let At::Memory {
            capture,
            offset,
            add,
        } = at
        else {
            return None;
        };
        let size = types.get(ty).size;
        if size > MAX_STACK_VALUE {
            return Some(unavailable(format!("value of {size} bytes is too large")));
        }
        let c = self.push(Capture::Deref {
            base: capture,
            offset,
            add: add as i32,
            len: Len::Fixed(size as u32),
        });
        let slot = ValueSlot {
            name: path.name.clone(),
            ty: Some(ty),
            pieces: vec![Piece {
                at: 0,
                len: size as u32,
                capture: c,
            }],
            size: size as u32,
            derefs: Vec::new(),
            unavailable: None,
        };
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{TypeId, TypeTable};
    use crate::plan::recipe::tests::{field, in_registers, ty};
    use crate::plan::Limits;

    /// `main.Point` (X, Y int) and `*main.Point`.
    fn builder(t: &mut TypeTable) -> (TypeId, TypeId) {
        let int = ty(t, "int", 8, TypeKind::Int);
        let fields = vec![field("X", 0, int), field("Y", 8, int)];
        let point = ty(t, "main.Point", 16, TypeKind::Struct { fields });
        let ptr = ty(
            t,
            "*main.Point",
            8,
            TypeKind::Pointer {
                pointee: Some(point),
            },
        );
        (point, ptr)
    }

    fn path(name: &str, base: &str, steps: Vec<PathStep>) -> Path {
        Path {
            name: name.into(),
            base: base.into(),
            steps,
        }
    }

    #[test]
    fn a_path_through_a_pointer_is_read_when_the_probe_fires() {
        let mut t = TypeTable::default();
        let (point, ptr) = builder(&mut t);
        let mut b = Builder::new(&t, Limits::default());
        let p = in_registers(&mut b, "p", ptr, 1);
        let pt = in_registers(&mut b, "pt", point, 2);
        b.recipe.values.extend([p, pt]);
        let y = b
            .path(&path("p.Y", "p", vec![PathStep::Field("Y".into())]))
            .expect("a slot");
        assert_eq!(y.name, "p.Y");
        assert_eq!(
            b.recipe.captures[y.pieces[0].capture as usize],
            Capture::Deref {
                base: 0,
                offset: 0,
                add: 8,
                len: Len::Fixed(8)
            }
        );
        // Inside the variable: the decoded value holds it already.
        assert!(b
            .path(&path("pt.X", "pt", vec![PathStep::Field("X".into())]))
            .is_none());
        // What cannot be followed says why.
        let bad = b
            .path(&path("p.Z", "p", vec![PathStep::Field("Z".into())]))
            .expect("a slot");
        assert_eq!(
            bad.unavailable.as_deref(),
            Some("main.Point has no field Z")
        );
        let bad = b
            .path(&path("pt[1]", "pt", vec![PathStep::Index(1)]))
            .expect("a slot");
        assert_eq!(
            bad.unavailable.as_deref(),
            Some("main.Point: no element [1] to read")
        );
        // No variable of that name: nothing to read.
        assert!(b.path(&path("(*q)", "q", vec![PathStep::Deref])).is_none());
    }
}
