//! What logprobe knows of the Go runtime's own data structures, in one
//! place: where a goroutine's `g` keeps its id and the top of its stack,
//! and how a map is laid out in memory.
//!
//! Layouts are read from the binary's own DWARF: `runtime.g` and
//! `runtime.stack` for the `g` offsets, and each map type's runtime
//! structures (which the linker describes per map type) for maps. For
//! binaries without DWARF a table fills in the `g` offsets of the Go
//! versions checked by hand; such binaries have no types, so no map is
//! ever decoded from a guess.
//!
//! A map layout is a [`MapLayout`] variant per runtime implementation,
//! recognised by the fields of its DWARF types in [`map_layout`]: the
//! bucket arrays of Go 1.23 and earlier ([`BucketMap`]: `hash<K,V>`,
//! `bucket<K,V>`) and the Swiss tables of Go 1.24 and later
//! ([`SwissMap`]: `map<K,V>`, `table<K,V>`, `groupReference<K,V>` and the
//! group type). Each has its own reads in the planner (`plan::maps`) and
//! its own decoding (`value::decode::maps`); neither hard-codes an offset:
//! they take them from here.

use anyhow::Result;
use object::{Object, ObjectSection};

use super::dwarf::Dwarf;
use super::types::{Field, TypeId, TypeKind, TypeTable};
use super::{Function, Lang, Param};

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

/// The layouts of the runtime's structures an image needs outside of any
/// one value's type.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RuntimeLayouts {
    pub(super) g: Option<GLayout>,
    /// `runtime.funcval.fn`: where a closure keeps its code address.
    pub(super) func_code: Option<u32>,
}

/// The runtime layouts of a Go binary: from DWARF (one pass over it),
/// else, for `g`, from the table of checked versions; what neither knows
/// is `None`. (A binary without DWARF has no types, so no func value is
/// ever decoded there.)
pub(super) fn runtime_layouts(
    dwarf: Option<&Dwarf>,
    file: &object::File,
) -> Result<RuntimeLayouts> {
    let mut out = RuntimeLayouts::default();
    if let Some(d) = dwarf {
        let found = d.struct_members(&["runtime.g", "runtime.stack", "runtime.funcval"])?;
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
            out.g = Some(GLayout { goid, stack_hi });
        }
        out.func_code = offset("runtime.funcval", "fn").and_then(|o| u32::try_from(o).ok());
    }
    if out.g.is_none() {
        out.g = goid_fallback(file).map(|goid| GLayout {
            goid,
            stack_hi: STACK_HI_FALLBACK,
        });
    }
    Ok(out)
}

/// Where the itab a non-empty interface's `tab` points to keeps the
/// dynamic type, from the interface's DWARF fields (`runtime.iface`:
/// `tab *runtime.itab` with `_type`; since Go 1.22 `*internal/abi.ITab`
/// with `Type`).
pub(super) fn itab_type(types: &TypeTable, iface: &[Field]) -> Option<u32> {
    let f = Fields(types);
    let tab = iface.iter().find(|x| x.name == "tab")?;
    let itab = f.pointee(tab.ty)?;
    f.offset(itab, "_type").or_else(|| f.offset(itab, "Type"))
}

/// Where a channel's `hchan<T>` (`hchan`, its DWARF struct) keeps
/// `qcount` and `dataqsiz`.
pub(super) fn chan_counts(types: &TypeTable, hchan: TypeId) -> Option<(u32, u32)> {
    let f = Fields(types);
    Some((f.offset(hchan, "qcount")?, f.offset(hchan, "dataqsiz")?))
}

/// `runtime.g.goid`'s offset for Go versions whose layout was checked
/// against their DWARF, for binaries that have none.
fn goid_fallback(file: &object::File) -> Option<u64> {
    // Checked: go1.19 (Debian's 1.19.8): goid at 152.
    (go_version(file)? == (1, 19)).then_some(152)
}

/// The Go release a binary was built with (`(1, 27)`), from the version
/// string the linker writes into `.go.buildinfo`, which stripped binaries
/// keep too.
pub(super) fn go_version(file: &object::File) -> Option<(u32, u32)> {
    let section = file.section_by_name(".go.buildinfo")?;
    let data = section.data().ok()?;
    let at = data.windows(4).position(|w| w == b"go1.")?;
    let digits = |s: &[u8]| -> Option<u32> {
        let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
        std::str::from_utf8(&s[..n]).ok()?.parse().ok()
    };
    Some((1, digits(data.get(at + 4..)?)?))
}

/// The name Go gives a shape instantiation's dictionary parameter.
pub const DICTIONARY: &str = ".dict";

/// Gives a Go shape instantiation (a generic function compiled for the
/// GC shapes of its type arguments: `main.pair[go.shape.string,go.shape.int]`)
/// built by Go `version` the dictionary parameter the compiler passes it
/// but, before Go 1.27, leaves out of DWARF: the first argument of a
/// function; of a method, the first before Go 1.20 (whose stenciler made
/// the receiver the next one), the one after the receiver since (the
/// unified IR's `shapeSig`). Closures inside generic functions take the
/// dictionary from their closure context and get none.
pub(super) fn add_dictionary(f: &mut Function, version: (u32, u32)) {
    if f.lang != Lang::Go || f.params.iter().any(|p| p.dictionary) {
        return;
    }
    let Some(shapes) = f.name.find("[go.shape.") else {
        return;
    };
    // The instantiation's brackets close at the last `]` (shape names
    // hold brackets of their own: `go.shape.[]int`).
    let Some(close) = f.name.rfind(']').filter(|&c| c > shapes) else {
        return;
    };
    let rest = &f.name[close + 1..];
    let closure = rest.split('.').any(|part| {
        ["func", "gowrap", "deferwrap"].iter().any(|k| {
            part.strip_prefix(k)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    });
    if closure {
        return;
    }
    // `pkg.F[...]` is a function; `pkg.T[...].M` and `pkg.(*T[...]).M` are
    // methods, whose receiver comes first.
    let method = !rest.is_empty();
    let at = match method && version >= (1, 20) {
        true => 1.min(f.args().count()),
        false => 0,
    };
    f.params.insert(
        at,
        Param {
            name: DICTIONARY.into(),
            type_ref: None,
            is_result: false,
            dictionary: true,
            die: None,
        },
    );
}

/// How one map type is laid out, by runtime implementation.
#[derive(Debug, Clone, Copy)]
pub enum MapLayout {
    /// Go 1.23 and earlier (`runtime/map.go`): a header (`hmap`) with
    /// `1 << B` arrays of buckets of 8 slots.
    Buckets(BucketMap),
    /// Go 1.24 and later (`internal/runtime/maps`): a header (`Map`) with
    /// a directory of Swiss tables, each an array of groups of 8 slots and
    /// a control word; a map of at most 8 entries is one group.
    Swiss(SwissMap),
}

/// The layout of the map type `map` (a `TypeKind::Map`), from the fields
/// its DWARF types have; `None` for a layout logprobe does not know, which
/// is then shown as unreadable, never guessed.
pub fn map_layout(types: &TypeTable, map: TypeId) -> Option<MapLayout> {
    let TypeKind::Map {
        hmap: Some(header),
        key,
        elem,
    } = types.underlying(map).kind
    else {
        return None;
    };
    let fields = Fields(types);
    BucketMap::from_types(fields, header, key, elem)
        .map(MapLayout::Buckets)
        .or_else(|| SwissMap::from_types(fields, header, key, elem).map(MapLayout::Swiss))
}

/// Field lookups in a type table, for reading runtime layouts.
#[derive(Clone, Copy)]
struct Fields<'t>(&'t TypeTable);

impl<'t> Fields<'t> {
    /// The field `name` of struct `ty`.
    fn get(self, ty: TypeId, name: &str) -> Option<&'t Field> {
        match &self.0.underlying(ty).kind {
            TypeKind::Struct { fields } => fields.iter().find(|f| f.name == name),
            _ => None,
        }
    }

    /// The byte offset of field `name` of struct `ty`.
    fn offset(self, ty: TypeId, name: &str) -> Option<u32> {
        u32::try_from(self.get(ty, name)?.offset).ok()
    }

    /// What a pointer type points to.
    fn pointee(self, ty: TypeId) -> Option<TypeId> {
        match self.0.underlying(ty).kind {
            TypeKind::Pointer { pointee } => pointee,
            _ => None,
        }
    }

    /// The element type of an array type.
    fn elem(self, ty: TypeId) -> Option<TypeId> {
        match self.0.underlying(ty).kind {
            TypeKind::Array { elem, .. } => elem,
            _ => None,
        }
    }

    fn size(self, ty: TypeId) -> Option<u32> {
        u32::try_from(self.0.get(ty).size).ok()
    }
}

/// Where the keys (or the elements) of a bucket or a group are: slot `i`'s
/// at byte `at + i * stride`, of type `stored`. The runtime stores a key
/// or an element larger than 128 bytes behind a pointer (`indirect`):
/// `stored` is then a pointer to `ty`, the map's own key or element type.
#[derive(Debug, Clone, Copy)]
pub struct SlotField {
    pub at: u32,
    pub stride: u32,
    pub stored: TypeId,
    pub ty: TypeId,
    pub indirect: bool,
}

impl SlotField {
    /// The byte of slot `i`'s key (or element) in its bucket or group.
    pub fn of(&self, i: u32) -> u32 {
        self.at + i * self.stride
    }

    /// A slot field at `at` with `stride`, storing `stored`, of a map
    /// whose own key (or element) type is `declared` when DWARF says.
    fn new(f: Fields, at: u32, stride: u32, stored: TypeId, declared: Option<TypeId>) -> Self {
        let pointer = |t: TypeId| matches!(f.0.underlying(t).kind, TypeKind::Pointer { .. });
        let (ty, indirect) = match (declared, f.pointee(stored)) {
            (Some(d), Some(p)) if !pointer(d) => (p, true),
            _ => (stored, false),
        };
        SlotField {
            at,
            stride,
            stored,
            ty,
            indirect,
        }
    }
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
    pub key: SlotField,
    pub value: SlotField,
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

    fn from_types(
        f: Fields,
        hmap: TypeId,
        key: Option<TypeId>,
        elem: Option<TypeId>,
    ) -> Option<BucketMap> {
        let buckets = f.get(hmap, "buckets")?;
        let bucket = f.pointee(buckets.ty)?;
        let keys = f.get(bucket, "keys")?;
        let values = f.get(bucket, "values")?;
        let (k, v) = (f.elem(keys.ty)?, f.elem(values.ty)?);
        Some(BucketMap {
            hmap_size: f.size(hmap)?,
            count_at: f.offset(hmap, "count")?,
            flags_at: f.offset(hmap, "flags")?,
            b_at: f.offset(hmap, "B")?,
            buckets_at: u32::try_from(buckets.offset).ok()?,
            oldbuckets_at: f.offset(hmap, "oldbuckets")?,
            bucket_size: f.size(bucket)?,
            overflow_at: f.offset(bucket, "overflow")?,
            key: SlotField::new(f, keys.offset as u32, f.size(k)?, k, key),
            value: SlotField::new(f, values.offset as u32, f.size(v)?, v, elem),
        })
    }
    /// Buckets a map holding `limit` entries has at most: Go grows a map
    /// when an insert would put more than 8 entries in its one bucket, or
    /// more than 6.5 a bucket on average (`overLoadFactor`), so `B` is the
    /// least with `count <= 8` or `count <= 6.5 << B` (maps made with a
    /// larger size hint, or emptied by deletes, have more). Go 1.21 alone
    /// grows past 6 a bucket (its `loadFactorNum` is
    /// `(bucketCnt * 13 / 16) * loadFactorDen`, which rounds 6.5 down to 6;
    /// Go 1.22 restored 6.5), so its maps of 49 to 52 entries, 97 to 104,
    /// … have twice the buckets: the count here is the least with
    /// `count <= 6 << B`, which covers every Go version.
    pub fn buckets_for(limit: u32) -> u32 {
        let mut n: u32 = 1;
        while limit > Self::SLOTS && (6 * n as u64) < limit as u64 && n < 1 << 30 {
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

/// Where a Swiss-table map keeps things (from the DWARF of `map<K,V>`,
/// `table<K,V>`, `groupReference<K,V>` and the group type, which the
/// linker writes per map type).
///
/// `map.dirPtr` is declared `**table<K,V>`: the directory, `dirLen`
/// (`1 << globalDepth`) table pointers, several of which name the same
/// table when its `localDepth` is less than `globalDepth` (its `index` is
/// the first of them). A small map (`dirLen` 0) has no directory: `dirPtr`
/// points to its one group. A table's `groups.data` points to
/// `groups.lengthMask + 1` groups. A table grows (or splits in two) all at
/// once, inside one insert, and the old table is then dropped: there is no
/// state part way through growing for a reader to honour, unlike buckets.
#[derive(Debug, Clone, Copy)]
pub struct SwissMap {
    pub header_size: u32,
    pub used_at: u32,
    pub dir_ptr_at: u32,
    pub dir_len_at: u32,
    pub table_size: u32,
    pub index_at: u32,
    /// `table.groups.data`, from the start of the table.
    pub groups_at: u32,
    /// `table.groups.lengthMask`, from the start of the table.
    pub length_mask_at: u32,
    pub group_size: u32,
    pub ctrl_at: u32,
    pub key: SlotField,
    pub value: SlotField,
}

impl SwissMap {
    /// Slots of a group (`abi.MapGroupSlots`).
    pub const SLOTS: u32 = 8;
    /// Groups of the largest table (`maxTableCapacity` / 8): a table that
    /// would grow past it splits instead.
    pub const MAX_TABLE_GROUPS: u32 = 128;
    /// The control byte of an empty slot (`ctrlEmpty`); a deleted one
    /// (`ctrlDeleted`, 0xfe) has this bit set too, a full one never.
    const CTRL_EMPTY: u8 = 0x80;

    fn from_types(
        f: Fields,
        header: TypeId,
        key: Option<TypeId>,
        elem: Option<TypeId>,
    ) -> Option<SwissMap> {
        let dir = f.get(header, "dirPtr")?;
        let table = f.pointee(f.pointee(dir.ty)?)?;
        let groups = f.get(table, "groups")?;
        let data = f.get(groups.ty, "data")?;
        let group = f.pointee(data.ty)?;
        let (k, v) = match f.get(group, "slots") {
            // Keys and elements interleaved (`slots [8]struct{key; elem}`).
            Some(slots) => {
                let slot = f.elem(slots.ty)?;
                let stride = f.size(slot)?;
                let (kf, vf) = (f.get(slot, "key")?, f.get(slot, "elem")?);
                let at = |x: &Field| u32::try_from(slots.offset + x.offset).ok();
                (
                    SlotField::new(f, at(kf)?, stride, kf.ty, key),
                    SlotField::new(f, at(vf)?, stride, vf.ty, elem),
                )
            }
            // Split (GOEXPERIMENT=mapsplitgroup: `keys [8]K; elems [8]V`).
            None => {
                let (kf, vf) = (f.get(group, "keys")?, f.get(group, "elems")?);
                let (ke, ve) = (f.elem(kf.ty)?, f.elem(vf.ty)?);
                (
                    SlotField::new(f, u32::try_from(kf.offset).ok()?, f.size(ke)?, ke, key),
                    SlotField::new(f, u32::try_from(vf.offset).ok()?, f.size(ve)?, ve, elem),
                )
            }
        };
        let in_groups =
            |name: &str| Some(u32::try_from(groups.offset).ok()? + f.offset(groups.ty, name)?);
        Some(SwissMap {
            header_size: f.size(header)?,
            used_at: f.offset(header, "used")?,
            dir_ptr_at: u32::try_from(dir.offset).ok()?,
            dir_len_at: f.offset(header, "dirLen")?,
            table_size: f.size(table)?,
            index_at: f.offset(table, "index")?,
            groups_at: in_groups("data")?,
            length_mask_at: in_groups("lengthMask")?,
            group_size: f.size(group)?.max(1),
            ctrl_at: f.offset(group, "ctrl")?,
            key: k,
            value: v,
        })
    }

    /// Whether a slot whose control byte is `ctrl` holds an entry (not
    /// empty, not deleted).
    pub fn full(ctrl: u8) -> bool {
        ctrl & Self::CTRL_EMPTY == 0
    }

    /// Groups a table holding `limit` entries has at most: tables keep at
    /// most 7 entries a group on average (`maxAvgGroupLoad`) and a power of
    /// two of groups; a fuller table doubles, up to
    /// [`Self::MAX_TABLE_GROUPS`] (maps made with a larger size hint, or
    /// emptied by deletes, have more).
    pub fn groups_for(limit: u32) -> u32 {
        let mut n: u32 = 1;
        while 7 * (n as u64) < limit as u64 && n < Self::MAX_TABLE_GROUPS {
            n *= 2;
        }
        n
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
        let (key, elem) = (Some(int), Some(int));
        let hmap = Some(hmap);
        ty(t, "map[int]int", 8, TypeKind::Map { hmap, key, elem })
    }

    /// `map[int]V` as Go 1.24's DWARF describes it, `V` being `elem`
    /// (stored in the slots as `stored`): `map<int,V>` (used, seed,
    /// dirPtr, dirLen, globalDepth: 48 bytes), `table<int,V>` (used,
    /// capacity, growthLeft, localDepth, index, groups: 32 bytes),
    /// `groupReference<int,V>` (data, lengthMask) and the group (ctrl,
    /// slots `[8]struct{key int; elem V}`).
    pub(crate) fn swiss_map(t: &mut TypeTable, elem: TypeId, stored: TypeId) -> TypeId {
        let int = ty(t, "int", 8, TypeKind::Int);
        let u8_ = ty(t, "uint8", 1, TypeKind::Uint);
        let u16_ = ty(t, "uint16", 2, TypeKind::Uint);
        let u64_ = ty(t, "uint64", 8, TypeKind::Uint);
        let vsize = t.get(stored).size;
        let slot_size = 8 + vsize;
        let fields = vec![field("key", 0, int), field("elem", 8, stored)];
        let slot = ty(t, "slot", slot_size, TypeKind::Struct { fields });
        let slots = TypeKind::Array {
            elem: Some(slot),
            count: 8,
        };
        let slots = ty(t, "[8]slot", 8 * slot_size, slots);
        let gsize = 8 + 8 * slot_size;
        let fields = vec![field("ctrl", 0, u64_), field("slots", 8, slots)];
        let group = ty(t, "group", gsize, TypeKind::Struct { fields });
        let pointee = Some(group);
        let data = ty(t, "*group", 8, TypeKind::Pointer { pointee });
        let fields = vec![field("data", 0, data), field("lengthMask", 8, u64_)];
        let groups = ty(t, "groupReference", 16, TypeKind::Struct { fields });
        let fields = vec![
            field("used", 0, u16_),
            field("capacity", 2, u16_),
            field("growthLeft", 4, u16_),
            field("localDepth", 6, u8_),
            field("index", 8, int),
            field("groups", 16, groups),
        ];
        let table = ty(t, "table", 32, TypeKind::Struct { fields });
        let pointee = Some(table);
        let table_ptr = ty(t, "*table", 8, TypeKind::Pointer { pointee });
        let pointee = Some(table_ptr);
        let dir = ty(t, "**table", 8, TypeKind::Pointer { pointee });
        let fields = vec![
            field("used", 0, u64_),
            field("seed", 8, u64_),
            field("dirPtr", 16, dir),
            field("dirLen", 24, int),
            field("globalDepth", 32, u8_),
        ];
        let header = ty(t, "map<int,V>", 48, TypeKind::Struct { fields });
        let kind = TypeKind::Map {
            hmap: Some(header),
            key: Some(int),
            elem: Some(elem),
        };
        ty(t, "map[int]V", 8, kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_maps_layout_comes_from_its_types() {
        let mut t = TypeTable::default();
        let m = fixtures::int_map(&mut t);
        let Some(MapLayout::Buckets(b)) = map_layout(&t, m) else {
            panic!("no layout");
        };
        assert_eq!(
            (b.hmap_size, b.b_at, b.buckets_at, b.oldbuckets_at),
            (48, 9, 16, 24)
        );
        assert_eq!(
            (b.bucket_size, b.key.at, b.value.at, b.overflow_at),
            (144, 8, 72, 136)
        );
        assert_eq!((b.key.stride, b.value.stride), (8, 8));
        assert!(!b.key.indirect && !b.value.indirect);
        // Not a map: no layout, never a guess.
        assert!(map_layout(&t, b.key.ty).is_none());
    }

    #[test]
    fn a_swiss_maps_layout_comes_from_its_types() {
        let mut t = TypeTable::default();
        let string = t.push(crate::image::Type {
            name: "string".into(),
            size: 16,
            kind: TypeKind::String,
        });
        let m = fixtures::swiss_map(&mut t, string, string);
        let Some(MapLayout::Swiss(s)) = map_layout(&t, m) else {
            panic!("no layout");
        };
        assert_eq!(
            (s.header_size, s.used_at, s.dir_ptr_at, s.dir_len_at),
            (48, 0, 16, 24)
        );
        assert_eq!(
            (s.table_size, s.index_at, s.groups_at, s.length_mask_at),
            (32, 8, 16, 24)
        );
        assert_eq!((s.group_size, s.ctrl_at), (8 + 8 * 24, 0));
        assert_eq!(
            (s.key.of(0), s.key.of(1), s.value.of(2)),
            (8, 32, 8 + 48 + 8)
        );
        assert!(!s.value.indirect);
        // A large element is stored behind a pointer: the slot holds
        // `*V`, the map's element type is `V`.
        let big = t.push(crate::image::Type {
            name: "[200]byte".into(),
            size: 200,
            kind: TypeKind::Array {
                elem: None,
                count: 200,
            },
        });
        let pointee = Some(big);
        let ptr = t.push(crate::image::Type {
            name: "*[200]byte".into(),
            size: 8,
            kind: TypeKind::Pointer { pointee },
        });
        let m = fixtures::swiss_map(&mut t, big, ptr);
        let Some(MapLayout::Swiss(s)) = map_layout(&t, m) else {
            panic!("no layout");
        };
        assert!(s.value.indirect);
        assert_eq!((s.value.stored, s.value.ty, s.value.stride), (ptr, big, 16));
        // A map of pointers stores them as they are.
        let m = fixtures::swiss_map(&mut t, ptr, ptr);
        let Some(MapLayout::Swiss(s)) = map_layout(&t, m) else {
            panic!("no layout");
        };
        assert!(!s.value.indirect);
    }

    #[test]
    fn control_bytes_and_group_counts() {
        // Empty (0x80) and deleted (0xfe) slots hold nothing; h2 bytes do.
        assert!(!SwissMap::full(0x80) && !SwissMap::full(0xfe));
        assert!(SwissMap::full(0) && SwissMap::full(0x7f));
        // 7 entries a group at most; powers of two; 128 groups a table.
        let n = SwissMap::groups_for;
        assert_eq!((n(1), n(7), n(8), n(56), n(64)), (1, 1, 2, 8, 16));
        assert_eq!(n(1 << 20), 128);
    }

    #[test]
    fn bucket_counts_follow_go_load_factor() {
        // One bucket holds 8; then 6.5 a bucket on average, and 6 with
        // Go 1.21: 13 entries are in 2 buckets, or 4 with Go 1.21; 52 in
        // 8, or 16 with Go 1.21 (as its runtime makes them).
        let n = BucketMap::buckets_for;
        assert_eq!(n(1), 1);
        assert_eq!(n(8), 1);
        assert_eq!(n(9), 2);
        assert_eq!(n(12), 2);
        assert_eq!(n(13), 4);
        assert_eq!(n(14), 4);
        assert_eq!(n(48), 8);
        assert_eq!(n(49), 16);
        assert_eq!(n(52), 16);
        assert_eq!(n(53), 16);
        assert_eq!(n(64), 16);
        assert_eq!(n(96), 16);
        assert_eq!(n(97), 32);
        assert_eq!(n(104), 32);
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

    fn function(name: &str, args: &[&str]) -> Function {
        let param = |n: &&str| Param {
            name: n.to_string(),
            type_ref: Some(1),
            is_result: false,
            dictionary: false,
            die: None,
        };
        Function {
            name: name.into(),
            low: 0,
            high: 1,
            file: None,
            line: None,
            params: args.iter().map(param).collect(),
            lang: Lang::Go,
            has_dwarf: true,
            trampoline: false,
        }
    }

    fn names(f: &Function) -> Vec<&str> {
        f.params.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn shape_instantiations_get_the_dictionary_dwarf_leaves_out() {
        // A function: the dictionary comes first.
        let mut f = function("main.pair[go.shape.string,go.shape.int]", &["k", "v"]);
        add_dictionary(&mut f, (1, 22));
        assert_eq!(names(&f), [".dict", "k", "v"]);
        assert!(f.params[0].dictionary && f.params[0].type_ref.is_none());
        // A method: after the receiver since Go 1.20, before it in 1.19.
        let push = "main.(*List[go.shape.string]).Push";
        let mut m = function(push, &["l", "x"]);
        add_dictionary(&mut m, (1, 24));
        assert_eq!(names(&m), ["l", ".dict", "x"]);
        let mut m = function(push, &["l", "x"]);
        add_dictionary(&mut m, (1, 19));
        assert_eq!(names(&m), [".dict", "l", "x"]);
        // Closures take it from their context; plain functions have none;
        // one DWARF lists (Go 1.27) is not added twice.
        for name in [
            "main.pair[go.shape.int].func1",
            "main.(*List[go.shape.int]).Push.func2.1",
            "main.main",
        ] {
            let mut c = function(name, &["a"]);
            add_dictionary(&mut c, (1, 27));
            assert_eq!(names(&c), ["a"], "{name}");
        }
        let mut listed = function("main.pair[go.shape.int]", &[".dict", "k"]);
        listed.params[0].dictionary = true;
        add_dictionary(&mut listed, (1, 27));
        assert_eq!(names(&listed), [".dict", "k"]);
    }
}
