//! Copying a Go map when its probe fires, by its runtime layout
//! (`image::goruntime`): for bucket maps, the header, the bucket arrays,
//! overflow chains and what the entries point to, within the value's share
//! of the budgets.

use super::recipe::{points, Builder};
use super::{Buffer, Len, ValueSlot, MAX_READ};
use crate::image::goruntime::{map_layout, BucketMap, MapLayout};
use crate::image::TypeId;

/// Overflow buckets followed after each bucket read (a chain longer than
/// this means more than `8 * (1 + MAP_OVERFLOW_LEVELS)` entries with the
/// same bucket hash bits: rare unless the map is far larger than the
/// element limit).
const MAP_OVERFLOW_LEVELS: u32 = 2;

impl Builder<'_> {
    /// Adds the reads of the map whose header type is `header` and whose
    /// pointer is at `ptr` (byte `at` of `buf`), by its layout; nothing for
    /// a layout logprobe does not know.
    pub(super) fn follow_map(
        &mut self,
        slot: &mut ValueSlot,
        header: TypeId,
        (buf, at): (Buffer, u32),
        ptr: (u16, u16),
        depth: u32,
    ) {
        match map_layout(self.types, header) {
            Some(MapLayout::Buckets(layout)) => {
                self.follow_bucket_map(slot, &layout, (buf, at), ptr, depth)
            }
            None => {}
        }
    }

    /// Adds the reads of a Go map (Go 1.19's `hmap` and `bmap`s) whose
    /// pointer is at `ptr`: the header; as many buckets from
    /// `hmap.buckets` as a map of `max_array_values` entries has at most
    /// (6.5 entries a bucket, Go's load factor); half as many from
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
        let points = points(self.types, layout.key, 0) || points(self.types, layout.value, 0);
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
                self.follow_slots(slot, layout, &level, depth + 1);
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

    /// Follows the keys and values of `buckets` (capture, offset of the
    /// bucket in it), slot 0 of every bucket first, then slot 1, and so on.
    fn follow_slots(
        &mut self,
        slot: &mut ValueSlot,
        layout: &BucketMap,
        buckets: &[(u16, u32)],
        depth: u32,
    ) {
        for i in 0..BucketMap::SLOTS {
            for &(c, off) in buckets {
                let k = off + layout.keys_at + i * layout.key_size;
                let v = off + layout.values_at + i * layout.value_size;
                self.follow(slot, layout.key, Buffer::Capture(c), k, depth);
                self.follow(slot, layout.value, Buffer::Capture(c), v, depth);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::goruntime::fixtures::int_map;
    use crate::image::TypeTable;
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
}
