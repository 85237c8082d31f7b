//! What logprobe knows of the Go runtime's own data structures, in one
//! place: where a goroutine's `g` keeps its id and the top of its stack,
//! and how a map is laid out in memory.
//!
//! Layouts are read from the binary's own DWARF: `runtime.g` and
//! `runtime.stack` for the `g` offsets, and each map type's runtime
//! structures (the `hash<K,V>` header and its `bucket<K,V>` type, which the
//! compiler describes per map type) for maps. For binaries without DWARF a
//! table fills in the `g` offsets of the Go versions checked by hand; such
//! binaries have no types, so no map is ever decoded from a guess.
//!
//! A map layout is a [`MapLayout`] variant per runtime implementation:
//! today the bucket arrays of Go 1.23 and earlier ([`BucketMap`]); a
//! second implementation (Go 1.24's Swiss tables) is a second variant,
//! recognised by the fields of its DWARF types in [`map_layout`], with its
//! own reads in the planner and its own decoding. Neither of those
//! hard-codes an offset: they take them from here.

use anyhow::Result;
use object::{Object, ObjectSection};

use super::dwarf::Dwarf;
use super::types::{Field, TypeId, TypeKind, TypeTable};

/// Where a goroutine's `runtime.g` keeps what probes read through the `g`
/// register (R14 on amd64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GLayout {
    /// Byte offset of `goid`, the goroutine id.
    pub goid: u64,
    /// Byte offset of `stack.hi`, the top of the goroutine's stack: the
    /// depth `stack.hi - SP` names a frame across stack copies.
    pub stack_hi: u64,
}

/// `stack.hi`'s offset when DWARF does not say: `g` begins with its
/// `stack` (`lo`, `hi`) in every Go release.
const STACK_HI_FALLBACK: u64 = 8;

/// The `g` layout of a Go binary: from DWARF, else from the table of
/// checked versions; `None` when neither knows it.
pub(super) fn g_layout(dwarf: Option<&Dwarf>, file: &object::File) -> Result<Option<GLayout>> {
    if let Some(d) = dwarf {
        let found = d.struct_members(&["runtime.g", "runtime.stack"])?;
        let offset = |strukt: &str, member: &str| {
            found
                .get(strukt)
                .and_then(|m| m.iter().find(|(n, _)| n == member))
                .map(|(_, o)| *o)
        };
        if let Some(goid) = offset("runtime.g", "goid") {
            let stack_hi = match (offset("runtime.g", "stack"), offset("runtime.stack", "hi")) {
                (Some(stack), Some(hi)) => stack + hi,
                _ => STACK_HI_FALLBACK,
            };
            return Ok(Some(GLayout { goid, stack_hi }));
        }
    }
    Ok(goid_fallback(file).map(|goid| GLayout {
        goid,
        stack_hi: STACK_HI_FALLBACK,
    }))
}

/// `runtime.g.goid`'s offset for Go versions whose layout was checked
/// against their DWARF, for binaries that have none.
fn goid_fallback(file: &object::File) -> Option<u64> {
    let section = file.section_by_name(".go.buildinfo")?;
    let data = section.data().ok()?;
    let at = data.windows(4).position(|w| w == b"go1.")?;
    let version = &data[at..data.len().min(at + 8)];
    // Checked: go1.19 (Debian's 1.19.8): goid at 152.
    version.starts_with(b"go1.19").then_some(152)
}

/// How one map type is laid out, by runtime implementation.
#[derive(Debug, Clone, Copy)]
pub enum MapLayout {
    /// Go 1.23 and earlier (`runtime/map.go`): a header (`hmap`) with
    /// `1 << B` arrays of buckets of 8 slots.
    Buckets(BucketMap),
}

/// The layout of the map whose header type (the struct a `TypeKind::Map`
/// points to) is `header`, from the fields its DWARF types have; `None`
/// for a layout logprobe does not know, which is then shown as not read.
pub fn map_layout(types: &TypeTable, header: TypeId) -> Option<MapLayout> {
    BucketMap::from_types(types, header).map(MapLayout::Buckets)
}

/// Where a bucket map keeps things (from the DWARF of `hash<K,V>` and
/// `bucket<K,V>`).
#[derive(Debug, Clone, Copy)]
pub struct BucketMap {
    pub hmap_size: u32,
    pub count_at: u32,
    pub flags_at: u32,
    pub b_at: u32,
    pub buckets_at: u32,
    pub oldbuckets_at: u32,
    pub bucket_size: u32,
    /// The bucket's `overflow` pointer (its last word).
    pub overflow_at: u32,
    pub keys_at: u32,
    pub values_at: u32,
    pub key: TypeId,
    pub key_size: u32,
    pub value: TypeId,
    pub value_size: u32,
}

impl BucketMap {
    /// Slots of a bucket (`bucketCnt`).
    pub const SLOTS: u32 = 8;
    /// A slot holds an entry when its tophash is at least this
    /// (`minTopHash`; smaller values mark empty and evacuated slots).
    const MIN_TOP_HASH: u8 = 5;
    /// The least tophash of an evacuated slot (`evacuatedX`; `evacuatedY`
    /// is 3, `evacuatedEmpty` 4).
    const EVACUATED_X: u8 = 2;
    /// `hmap.flags` bit of a map growing into as many buckets as it had.
    const SAME_SIZE_GROW: u8 = 8;

    fn from_types(types: &TypeTable, hmap: TypeId) -> Option<BucketMap> {
        let field = |ty: TypeId, name: &str| -> Option<Field> {
            match &types.underlying(ty).kind {
                TypeKind::Struct { fields } => fields.iter().find(|f| f.name == name).cloned(),
                _ => None,
            }
        };
        let buckets = field(hmap, "buckets")?;
        let bucket = match types.underlying(buckets.ty).kind {
            TypeKind::Pointer { pointee: Some(b) } => b,
            _ => return None,
        };
        let elem = |f: &Field| match types.underlying(f.ty).kind {
            TypeKind::Array { elem: Some(e), .. } => Some(e),
            _ => None,
        };
        let keys = field(bucket, "keys")?;
        let values = field(bucket, "values")?;
        let (key, value) = (elem(&keys)?, elem(&values)?);
        Some(BucketMap {
            hmap_size: types.get(hmap).size as u32,
            count_at: field(hmap, "count")?.offset as u32,
            flags_at: field(hmap, "flags")?.offset as u32,
            b_at: field(hmap, "B")?.offset as u32,
            buckets_at: buckets.offset as u32,
            oldbuckets_at: field(hmap, "oldbuckets")?.offset as u32,
            bucket_size: types.get(bucket).size as u32,
            overflow_at: field(bucket, "overflow")?.offset as u32,
            keys_at: keys.offset as u32,
            values_at: values.offset as u32,
            key,
            key_size: types.get(key).size as u32,
            value,
            value_size: types.get(value).size as u32,
        })
    }

    /// Buckets a map holding `limit` entries has at most: Go grows a map
    /// when an insert would put more than 8 entries in its one bucket, or
    /// more than 6.5 a bucket on average (`overLoadFactor`), so `B` is the
    /// least with `count <= 8` or `count <= 6.5 << B` (maps made with a
    /// larger size hint, or emptied by deletes, have more).
    pub fn buckets_for(limit: u32) -> u32 {
        let mut n: u32 = 1;
        while limit > Self::SLOTS && (13 * n as u64) < 2 * limit as u64 && n < 1 << 30 {
            n *= 2;
        }
        n
    }

    /// Whether a slot whose tophash is `tophash` holds an entry.
    pub fn occupied(tophash: u8) -> bool {
        tophash >= Self::MIN_TOP_HASH
    }

    /// Whether a bucket whose first tophash is `tophash` was moved to the
    /// new buckets of a growing map (`evacuatedX`, `evacuatedY` or
    /// `evacuatedEmpty`).
    pub fn evacuated(tophash: u8) -> bool {
        (Self::EVACUATED_X..Self::MIN_TOP_HASH).contains(&tophash)
    }

    /// How many old buckets a growing map with `hmap.flags` and `B` keeps:
    /// half as many as it has now, or as many when it grows in place (too
    /// many overflow buckets).
    pub fn old_buckets(flags: u8, b: u8) -> u64 {
        if flags & Self::SAME_SIZE_GROW != 0 || b == 0 {
            1u64 << b
        } else {
            1u64 << (b - 1)
        }
    }
}

/// Type tables shaped as Go's DWARF describes the runtime's structures,
/// for the planner's and the decoder's unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::image::{Field, Type, TypeId, TypeKind, TypeTable};

    fn ty(t: &mut TypeTable, name: &str, size: u64, kind: TypeKind) -> TypeId {
        t.push(Type {
            name: name.into(),
            size,
            kind,
        })
    }

    fn field(name: &str, offset: u64, ty: TypeId) -> Field {
        Field {
            name: name.into(),
            offset,
            ty,
            embedded: false,
        }
    }

    /// `map[int]int` as Go 1.19's DWARF describes it: `hash<int,int>`
    /// (count, flags, B, buckets, oldbuckets) and `bucket<int,int>`
    /// (tophash, keys, values, overflow: 144 bytes).
    pub(crate) fn int_map(t: &mut TypeTable) -> TypeId {
        let int = ty(t, "int", 8, TypeKind::Int);
        let byte = ty(t, "uint8", 1, TypeKind::Uint);
        let array = |elem| TypeKind::Array {
            elem: Some(elem),
            count: 8,
        };
        let tophash = ty(t, "[8]uint8", 8, array(byte));
        let ints = ty(t, "[8]int", 64, array(int));
        let bucket = ty(t, "bucket<int,int>", 144, TypeKind::Void);
        let pointee = Some(bucket);
        let pointer = ty(t, "*bucket<int,int>", 8, TypeKind::Pointer { pointee });
        let fields = vec![
            field("tophash", 0, tophash),
            field("keys", 8, ints),
            field("values", 72, ints),
            field("overflow", 136, pointer),
        ];
        let kind = TypeKind::Struct { fields };
        t.set(
            bucket,
            Type {
                name: "bucket<int,int>".into(),
                size: 144,
                kind,
            },
        );
        let fields = vec![
            field("count", 0, int),
            field("flags", 8, byte),
            field("B", 9, byte),
            field("buckets", 16, pointer),
            field("oldbuckets", 24, pointer),
        ];
        let hmap = ty(t, "hash<int,int>", 48, TypeKind::Struct { fields });
        ty(t, "map[int]int", 8, TypeKind::Map { hmap: Some(hmap) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_maps_layout_comes_from_its_types() {
        let mut t = TypeTable::default();
        let m = fixtures::int_map(&mut t);
        let TypeKind::Map { hmap: Some(h) } = t.get(m).kind else {
            panic!("not a map");
        };
        let Some(MapLayout::Buckets(b)) = map_layout(&t, h) else {
            panic!("no layout");
        };
        assert_eq!(
            (b.hmap_size, b.b_at, b.buckets_at, b.oldbuckets_at),
            (48, 9, 16, 24)
        );
        assert_eq!(
            (b.bucket_size, b.keys_at, b.values_at, b.overflow_at),
            (144, 8, 72, 136)
        );
        assert_eq!((b.key_size, b.value_size), (8, 8));
        // Not a bucket map: no layout, never a guess.
        assert!(map_layout(&t, b.key).is_none());
    }

    #[test]
    fn bucket_counts_follow_go_load_factor() {
        // One bucket holds 8; then 6.5 a bucket on average.
        let n = BucketMap::buckets_for;
        assert_eq!(n(1), 1);
        assert_eq!(n(8), 1);
        assert_eq!(n(9), 2);
        assert_eq!(n(13), 2);
        assert_eq!(n(14), 4);
        assert_eq!(n(52), 8);
        assert_eq!(n(53), 16);
        assert_eq!(n(64), 16);
    }

    #[test]
    fn tophash_marks_entries_and_evacuated_buckets() {
        assert!(!BucketMap::occupied(0) && !BucketMap::occupied(4));
        assert!(BucketMap::occupied(5) && BucketMap::occupied(0xff));
        assert!(BucketMap::evacuated(2) && BucketMap::evacuated(4));
        assert!(!BucketMap::evacuated(1) && !BucketMap::evacuated(5));
        // Growing to twice the buckets keeps half as many old ones; in
        // place (sameSizeGrow), as many.
        assert_eq!(BucketMap::old_buckets(0, 3), 4);
        assert_eq!(BucketMap::old_buckets(8, 3), 8);
        assert_eq!(BucketMap::old_buckets(0, 0), 1);
    }
}
