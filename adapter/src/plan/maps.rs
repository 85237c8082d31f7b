//! Copying a Go map when its probe fires, by its runtime layout
//! (`image::goruntime`): for bucket maps, the header, the bucket arrays,
//! overflow chains; for Swiss-table maps, the header, a small map's group,
//! the directory, its first tables and their groups; then what the
//! entries point to, within the value's share of the budgets.

use super::recipe::{points, Builder, MAX_POINTEE};
use super::{Buffer, Len, ValueSlot, MAX_READ};
use crate::image::goruntime::{map_layout, BucketMap, MapLayout, SlotField, SwissMap};
use crate::image::TypeId;

/// Overflow buckets followed after each bucket read (a chain longer than
/// this means more than `8 * (1 + MAP_OVERFLOW_LEVELS)` entries with the
/// same bucket hash bits: rare unless the map is far larger than the
/// element limit).
const MAP_OVERFLOW_LEVELS: u32 = 2;

/// Directory entries of a Swiss-table map whose tables are read. A map has
/// more than one table only past 896 entries (one table holds at most
/// 1024 slots, 7/8 of them used) or when made with a size hint that large;
/// its first table then already holds far more than the element limit
/// shows, unless the hint was large and the map is nearly empty.
const MAX_TABLES: u32 = 4;

impl Builder<'_> {
    /// Adds the reads of the map of type `map` whose pointer is at `ptr`
    /// (byte `at` of `buf`), by its layout; nothing for a layout logprobe
    /// does not know.
    pub(super) fn follow_map(
        &mut self,
        slot: &mut ValueSlot,
        map: TypeId,
        (buf, at): (Buffer, u32),
        ptr: (u16, u16),
        depth: u32,
    ) {
        match map_layout(self.types, map) {
            Some(MapLayout::Buckets(layout)) => {
                self.follow_bucket_map(slot, &layout, (buf, at), ptr, depth)
            }
            Some(MapLayout::Swiss(layout)) => {
                self.follow_swiss_map(slot, &layout, (buf, at), ptr, depth)
            }
            None => {}
        }
    }

    /// Adds the reads of a Go map (Go 1.19's `hmap` and `bmap`s) whose
    /// pointer is at `ptr`: the header; as many buckets from
    /// `hmap.buckets` as a map of `max_array_values` entries has at most
    /// (6.5 entries a bucket, Go's load factor, 6 with Go 1.21); half as many from
    /// `hmap.oldbuckets`, which a map part way through growing still keeps
    /// entries in; the overflow chain of every bucket read, to
    /// [`MAP_OVERFLOW_LEVELS`] buckets deep; then what the entries' keys and
    /// values point to, for the slots most likely to be in use first (the
    /// lower slots of the main buckets, which fill first, then the
    /// overflow buckets'), as far as this value's share of the budget goes.
    /// Which slots are in use, which buckets exist (`1 << B`) and which old
    /// buckets are evacuated is only known to the decoder: the reads may go
    /// past the real arrays, and a null `oldbuckets` or overflow pointer
    /// reads nothing.
    fn follow_bucket_map(
        &mut self,
        slot: &mut ValueSlot,
        layout: &BucketMap,
        (buf, at): (Buffer, u32),
        ptr: (u16, u16),
        depth: u32,
    ) {
        let bsize = layout.bucket_size;
        if bsize == 0 || bsize > MAX_READ {
            return;
        }
        let Some(m) = self.deref_into(slot, (buf, at, 0), ptr, 0, Len::Fixed(layout.hmap_size))
        else {
            return;
        };
        let points = self.slots_point(&layout.key, &layout.value);
        let mut n = BucketMap::buckets_for(self.limits.max_array_values);
        // The bucket reads, with one level of overflow, take at most half of
        // what is left when the entries point somewhere, so that what they
        // point to gets the other half.
        let room = match points {
            true => self.room() as u64 / 2,
            false => self.room() as u64,
        };
        let steps = self.steps_left() as u64 / 2;
        let cost = |n: u32| {
            let buckets = (n + (n / 2).max(1)) as u64;
            (2 * buckets * bsize as u64, 2 + buckets)
        };
        while n > 1 && (n * bsize > MAX_READ || cost(n).0 > room || cost(n).1 > steps) {
            n /= 2;
        }
        let mut main = Vec::new();
        // `1 << B` buckets, and half as many old ones, up to the count the
        // budget allows: reads past the real arrays would follow garbage.
        for (field, count, scale) in [
            (layout.buckets_at, n, bsize),
            (layout.oldbuckets_at, (n / 2).max(1), bsize / 2),
        ] {
            let Ok(b_at) = u16::try_from(layout.b_at) else {
                break;
            };
            let len = Len::Shifted {
                capture: m,
                offset: b_at,
                scale,
                max: count * bsize,
            };
            let Some(c) = self.deref_into(
                slot,
                (Buffer::Capture(m), field, 0),
                (m, field as u16),
                0,
                len,
            ) else {
                break;
            };
            main.extend((0..count).map(|i| (c, i * bsize)));
        }
        let mut level = main;
        for overflow in 0.. {
            if points {
                self.follow_slots(slot, (&layout.key, &layout.value), &level, depth + 1);
            }
            if overflow == MAP_OVERFLOW_LEVELS {
                break;
            }
            let mut next = Vec::new();
            for &(c, off) in &level {
                let link = off + layout.overflow_at;
                let Ok(link16) = u16::try_from(link) else {
                    break;
                };
                let to = (Buffer::Capture(c), link, 0);
                match self.deref_into(slot, to, (c, link16), 0, Len::Fixed(bsize)) {
                    Some(d) => next.push((d, 0)),
                    None => break,
                }
            }
            if next.is_empty() {
                break;
            }
            level = next;
        }
    }

    /// Adds the reads of a Swiss-table map (Go 1.24's `internal/runtime/
    /// maps`) whose pointer is at `ptr`: the header; what `dirPtr` points
    /// to twice, as a small map's one group and as the directory (`dirLen`
    /// table pointers: nothing for a small map), the decoder choosing by
    /// `dirLen`; the tables of the first [`MAX_TABLES`] directory entries
    /// (one may appear several times: the decoder shows it once); of each,
    /// the groups a table of `max_array_values` entries has at most, as
    /// `groups.data`'s first group and then `groups.lengthMask` more
    /// (together `lengthMask + 1`, never past the table's own array); then
    /// what the entries' keys and values point to, the small map's first,
    /// then table by table, slot by slot across its groups, as far as this
    /// value's share of the budget goes.
    fn follow_swiss_map(
        &mut self,
        slot: &mut ValueSlot,
        layout: &SwissMap,
        (buf, at): (Buffer, u32),
        ptr: (u16, u16),
        depth: u32,
    ) {
        let gsize = layout.group_size;
        let (Ok(dir16), Ok(len16), Ok(data16), Ok(mask16)) = (
            u16::try_from(layout.dir_ptr_at),
            u16::try_from(layout.dir_len_at),
            u16::try_from(layout.groups_at),
            u16::try_from(layout.length_mask_at),
        ) else {
            return;
        };
        if gsize > MAX_READ {
            return;
        }
        let header = Len::Fixed(layout.header_size);
        let Some(m) = self.deref_into(slot, (buf, at, 0), ptr, 0, header) else {
            return;
        };
        let dir = (Buffer::Capture(m), layout.dir_ptr_at, 0);
        let Some(small) = self.deref_into(slot, dir, (m, dir16), 0, Len::Fixed(gsize)) else {
            return;
        };
        let points = self.slots_point(&layout.key, &layout.value);
        let room = match points {
            true => self.room() as u64 / 2,
            false => self.room() as u64,
        };
        let steps = self.steps_left() as u64 / 2;
        // Groups of each table: as many as the limit needs, one read
        // holds (after the first group) and the room allows for a table.
        let table = layout.table_size as u64;
        let mut n = SwissMap::groups_for(self.limits.max_array_values);
        while n > 1 && ((n - 1) * gsize > MAX_READ || table + (n * gsize) as u64 + 8 > room) {
            n /= 2;
        }
        let per_table = table + (n * gsize) as u64 + 8;
        let tables = (room / per_table)
            .min(steps.saturating_sub(1) / 3)
            .min(MAX_TABLES as u64) as u32;
        let mut groups = vec![vec![(small, 0)]];
        let len = Len::Counted {
            capture: m,
            offset: len16,
            scale: 8,
            max: 8 * tables,
        };
        let directory = match tables {
            0 => None,
            _ => self.deref_into(slot, dir, (m, dir16), 0, len),
        };
        for i in 0..directory.map_or(0, |_| tables) {
            let Some(d) = directory else { break };
            let entry = (Buffer::Capture(d), 8 * i, 0);
            let fixed = Len::Fixed(layout.table_size);
            let Some(t) = self.deref_into(slot, entry, (d, (8 * i) as u16), 0, fixed) else {
                break;
            };
            let data = (Buffer::Capture(t), layout.groups_at, 0);
            let fixed = Len::Fixed(gsize);
            let Some(g0) = self.deref_into(slot, data, (t, data16), 0, fixed) else {
                break;
            };
            groups.push(vec![(g0, 0)]);
            if n == 1 {
                continue;
            }
            let rest = Len::Counted {
                capture: t,
                offset: mask16,
                scale: gsize,
                max: (n - 1) * gsize,
            };
            let data = (Buffer::Capture(t), layout.groups_at, gsize);
            let Some(r) = self.deref_into(slot, data, (t, data16), gsize as i32, rest) else {
                break;
            };
            if let Some(table) = groups.last_mut() {
                table.extend((0..n - 1).map(|j| (r, j * gsize)));
            }
        }
        if points {
            // The small map's group first (it is the whole map when it is
            // one, and only 8 slots otherwise), then table by table: the
            // first table is all most maps have.
            for containers in &groups {
                let fields = (&layout.key, &layout.value);
                self.follow_slots(slot, fields, containers, depth + 1);
            }
        }
    }

    /// Whether a map's keys or elements, as its slots store them, point
    /// anywhere.
    fn slots_point(&self, key: &SlotField, value: &SlotField) -> bool {
        points(self.types, key.stored, 0) || points(self.types, value.stored, 0)
    }

    /// Follows the keys and values of `containers` (buckets or groups:
    /// capture, offset of the container in it), slot 0 of every container
    /// first, then slot 1, and so on.
    fn follow_slots(
        &mut self,
        slot: &mut ValueSlot,
        (key, value): (&SlotField, &SlotField),
        containers: &[(u16, u32)],
        depth: u32,
    ) {
        for i in 0..BucketMap::SLOTS {
            for &(c, off) in containers {
                self.follow_slot_field(slot, key, c, off + key.of(i), depth);
                self.follow_slot_field(slot, value, c, off + value.of(i), depth);
            }
        }
    }

    /// Follows one key or element stored at byte `at` of capture `c`: what
    /// it points to, or, stored behind a pointer (larger than 128 bytes),
    /// the value itself and then what that points to, at the same depth
    /// (the runtime's indirection is not one the program wrote).
    fn follow_slot_field(
        &mut self,
        slot: &mut ValueSlot,
        field: &SlotField,
        c: u16,
        at: u32,
        depth: u32,
    ) {
        if !field.indirect {
            self.follow(slot, field.stored, Buffer::Capture(c), at, depth);
            return;
        }
        let size = (self.types.get(field.ty).size as u32).min(MAX_POINTEE);
        let Ok(at16) = u16::try_from(at) else {
            return;
        };
        let to = (Buffer::Capture(c), at, 0);
        if let Some(d) = self.deref_into(slot, to, (c, at16), 0, Len::Fixed(size)) {
            self.follow(slot, field.ty, Buffer::Capture(d), 0, depth);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::goruntime::fixtures::{int_map, swiss_map};
    use crate::image::{Type, TypeKind, TypeTable};
    use crate::plan::recipe::tests::in_registers;
    use crate::plan::{Capture, Limits};

    #[test]
    fn a_bucket_map_reads_its_header_buckets_old_buckets_and_overflow() {
        let mut t = TypeTable::default();
        let m = int_map(&mut t);
        let mut b = Builder::new(&t, Limits::default());
        let slot = in_registers(&mut b, "m", m, 1);
        b.recipe.values.push(slot);
        b.follow_shared();
        let r = b.finish();
        let deref = |base, offset, len| Capture::Deref {
            base,
            offset,
            add: 0,
            len,
        };
        let shifted = |scale, max| Len::Shifted {
            capture: 1,
            offset: 9,
            scale,
            max,
        };
        // 64 entries fit in 16 buckets; a growing map keeps half as many.
        assert_eq!(r.captures[1], deref(0, 0, Len::Fixed(48)));
        assert_eq!(r.captures[2], deref(1, 16, shifted(144, 16 * 144)));
        assert_eq!(r.captures[3], deref(1, 24, shifted(72, 8 * 144)));
        // Each bucket read's overflow pointer, two buckets deep.
        assert_eq!(r.captures[4], deref(2, 136, Len::Fixed(144)));
        assert_eq!(r.captures[4 + 24], deref(4, 136, Len::Fixed(144)));
        assert_eq!(r.captures.len(), 4 + 2 * 24);
    }

    #[test]
    fn a_swiss_map_reads_its_group_directory_tables_and_their_groups() {
        let mut t = TypeTable::default();
        let int = t.push(Type {
            name: "int".into(),
            size: 8,
            kind: TypeKind::Int,
        });
        let m = swiss_map(&mut t, int, int);
        let mut b = Builder::new(&t, Limits::default());
        let slot = in_registers(&mut b, "m", m, 1);
        b.recipe.values.push(slot);
        b.follow_shared();
        let r = b.finish();
        let deref = |base, offset, add, len| Capture::Deref {
            base,
            offset,
            add,
            len,
        };
        let group = 8 + 8 * 16;
        // The header; `dirPtr` as a small map's group, and as `dirLen`
        // table pointers.
        assert_eq!(r.captures[1], deref(0, 0, 0, Len::Fixed(48)));
        assert_eq!(r.captures[2], deref(1, 16, 0, Len::Fixed(group)));
        let dir = Len::Counted {
            capture: 1,
            offset: 24,
            scale: 8,
            max: 8 * MAX_TABLES,
        };
        assert_eq!(r.captures[3], deref(1, 16, 0, dir));
        // Each table, its first group, then `lengthMask` more, up to the
        // 16 groups a table of 64 entries has.
        for i in 0..MAX_TABLES as u16 {
            let at = 4 + 3 * i;
            assert_eq!(r.captures[at as usize], deref(3, 8 * i, 0, Len::Fixed(32)));
            assert_eq!(
                r.captures[at as usize + 1],
                deref(at, 16, 0, Len::Fixed(group))
            );
            let rest = Len::Counted {
                capture: at,
                offset: 24,
                scale: group,
                max: 15 * group,
            };
            let add = group as i32;
            assert_eq!(r.captures[at as usize + 2], deref(at, 16, add, rest));
        }
        // Integers point nowhere: nothing else.
        assert_eq!(r.captures.len(), 4 + 3 * MAX_TABLES as usize);
        // The decoder finds the rest of a table's groups by their start.
        let rest = &r.values[0].derefs[5];
        assert_eq!(
            (rest.from, rest.at, rest.start),
            (Buffer::Capture(4), 16, group)
        );
    }
}
