//! Decoding Go maps by their runtime layout (`image::goruntime`): the
//! bucket arrays of Go 1.23 and earlier, old buckets of a growing map and
//! overflow chains included, and the Swiss tables of Go 1.24 and later.

use super::{le, unreadable, Decoder, MAX_NESTING};

/// Bytes of a bucket's tophash (or a group's control word): what must be
/// captured of one for any of its slots to be shown.
const TOPHASH: usize = 8;

/// How many containers (buckets, groups) of `size` bytes `len` captured
/// bytes hold at least the tophash or control word of.
fn partly(len: usize, size: u32) -> u64 {
    match len.checked_sub(TOPHASH) {
        Some(rest) => (rest / size.max(1) as usize) as u64 + 1,
        None => 0,
    }
}
use crate::image::goruntime::{map_layout, BucketMap, MapLayout, SlotField, SwissMap};
use crate::image::TypeId;
use crate::plan::Buffer;
use crate::value::{Entry, Value};

impl<'a> Decoder<'a> {
    /// The map of type `map` whose header pointer is at byte `at` of
    /// `from` (its value `address`).
    pub(super) fn map(
        &mut self,
        name: String,
        map: TypeId,
        from: Buffer,
        at: u32,
        address: u64,
        depth: u32,
    ) -> Value {
        if address == 0 {
            return Value::Nil { r#type: name };
        }
        let Some(layout) = map_layout(self.types, map) else {
            return unreadable(
                "map layout not known: its DWARF describes neither Go's buckets nor its Swiss tables",
            );
        };
        let Some(hdr) = self.target(from, at) else {
            // A header not captured (the depth limit): the contents are
            // not shown.
            return Value::Map {
                r#type: name,
                entries: None,
                more: 0,
            };
        };
        match layout {
            MapLayout::Buckets(b) => self.bucket_map(name, &b, hdr, depth),
            MapLayout::Swiss(s) => self.swiss_map(name, &s, hdr, depth),
        }
    }

    /// A bucket map whose header was captured into capture `hdr`.
    fn bucket_map(&mut self, name: String, layout: &BucketMap, hdr: u16, depth: u32) -> Value {
        let Some(h) = self.bytes(Buffer::Capture(hdr)) else {
            return unreadable("map header not readable");
        };
        let count = le(h.get(layout.count_at as usize..).unwrap_or(&[]));
        let flags = h.get(layout.flags_at as usize).copied().unwrap_or(0);
        let b = h.get(layout.b_at as usize).copied().unwrap_or(0).min(31);
        let hdr = Buffer::Capture(hdr);
        let new = self.target(hdr, layout.buckets_at);
        let Some(new) = new.filter(|&c| self.bytes(Buffer::Capture(c)).is_some()) else {
            return Value::Map {
                r#type: name,
                entries: if count == 0 { Some(Vec::new()) } else { None },
                more: 0,
            };
        };
        // A map part way through growing keeps the entries of the old
        // buckets not evacuated yet there: half as many buckets, or as many
        // when it grows in place (too many overflow buckets).
        let old_words = h.get(layout.oldbuckets_at as usize..).map(le);
        let old = match old_words {
            Some(a) if a != 0 => {
                let n = BucketMap::old_buckets(flags, b);
                Some((self.target(hdr, layout.oldbuckets_at), n))
            }
            _ => None,
        };
        let limit = self.limits.max_array_values as usize;
        let mut entries = Vec::new();
        // Buckets past those captured (of the new array, and those the
        // captured old buckets move to) hold nothing that can be shown.
        let captured = |c: Option<u16>| {
            c.and_then(|c| self.bytes(Buffer::Capture(c)))
                .map_or(0, |d| partly(d.len(), layout.bucket_size))
        };
        let reach = captured(Some(new)).max(old.map_or(0, |(c, n)| {
            let moved_to = (1u64 << b) / n;
            captured(c).min(n) * moved_to
        }));
        // Delve's order: bucket by bucket, each with its overflow chain; a
        // bucket whose old bucket is not evacuated yet is empty, and the
        // entries are shown from the old bucket instead, when the first of
        // the new buckets it moves to comes.
        for bi in 0..(1u64 << b).min(reach) {
            if entries.len() >= limit || entries.len() as u64 >= count {
                break;
            }
            let mut from = (new, bi as u32 * layout.bucket_size);
            if let Some((old, n)) = old {
                let ob = bi & (n - 1);
                let at = ob as u32 * layout.bucket_size;
                let waiting = old.filter(|&c| {
                    self.bucket(layout, c, at).is_some() && !self.evacuated(layout, c, at)
                });
                if let Some(c) = waiting {
                    if ob != bi {
                        continue;
                    }
                    from = (c, at);
                }
            }
            self.chain(layout, from, depth, limit, &mut entries);
        }
        let more = count.saturating_sub(entries.len() as u64);
        Value::Map {
            r#type: name,
            entries: Some(entries),
            more,
        }
    }

    /// The bytes of the bucket at byte `at` of capture `c`, if all there.
    /// A bucket is shown as far as it was captured, from its tophash on:
    /// under eBPF a read stops at a page that is not present (never
    /// touched: the zero tail of a fresh overflow bucket), and what lies
    /// beyond is shown as not captured, never guessed.
    fn bucket(&self, layout: &BucketMap, c: u16, at: u32) -> Option<&'a [u8]> {
        let size = layout.bucket_size as usize;
        let data = self.bytes(Buffer::Capture(c))?;
        let end = data.len().min(at as usize + size);
        data.get(at as usize..end).filter(|b| b.len() >= TOPHASH)
    }

    /// Whether an old bucket has been moved to the new buckets (its slots
    /// marked `evacuatedX`, `evacuatedY` or `evacuatedEmpty`).
    fn evacuated(&self, layout: &BucketMap, c: u16, at: u32) -> bool {
        self.bucket(layout, c, at)
            .and_then(|b| b.first())
            .is_some_and(|&t| BucketMap::evacuated(t))
    }

    /// Adds the entries of the bucket at `(c, at)` and of its overflow
    /// buckets, as far as they were captured, until `limit`.
    fn chain(
        &mut self,
        layout: &BucketMap,
        (mut c, mut at): (u16, u32),
        depth: u32,
        limit: usize,
        entries: &mut Vec<Entry>,
    ) {
        // The plan follows a bounded chain; this bound only guards against
        // a malformed slot.
        for _ in 0..MAX_NESTING {
            let Some(bucket) = self.bucket(layout, c, at) else {
                return;
            };
            for i in 0..BucketMap::SLOTS {
                if entries.len() >= limit {
                    return;
                }
                if !BucketMap::occupied(bucket[i as usize]) {
                    continue;
                }
                let key = self.slot_field(&layout.key, c, at + layout.key.of(i), depth);
                let value = self.slot_field(&layout.value, c, at + layout.value.of(i), depth);
                entries.push(Entry { key, value });
            }
            match self.target(Buffer::Capture(c), at + layout.overflow_at) {
                Some(next) => (c, at) = (next, 0),
                None => return,
            }
        }
    }

    /// A Swiss-table map whose header was captured into capture `hdr`,
    /// entries in Delve's order: a small map's one group; else directory
    /// entry by entry, each table once (at the first entry naming it, its
    /// `index`), its groups in order, their full slots in order. Groups and
    /// tables not captured (past the budget) are left out, and counted
    /// with the rest in `...+N more`.
    fn swiss_map(&mut self, name: String, layout: &SwissMap, hdr: u16, depth: u32) -> Value {
        let Some(h) = self.bytes(Buffer::Capture(hdr)) else {
            return unreadable("map header not readable");
        };
        let word = |at: u32| h.get(at as usize..at as usize + 8).map(le);
        let (Some(used), Some(dir_ptr), Some(dir_len)) = (
            word(layout.used_at),
            word(layout.dir_ptr_at),
            word(layout.dir_len_at),
        ) else {
            return unreadable("map header not readable");
        };
        let limit = self.limits.max_array_values as usize;
        let mut entries = Vec::new();
        let dir = Buffer::Capture(hdr);
        // `dirPtr` was read as a small map's group, then as the directory.
        let reads = self.targets(dir, layout.dir_ptr_at, 0);
        let (small, directory) = (reads.first().copied(), reads.get(1).copied());
        match (dir_ptr, dir_len) {
            // An empty map that never had an entry.
            (0, _) if used == 0 => {}
            (0, _) => return unreadable(format!("map of {used} entries without groups")),
            (_, 0) => {
                let Some(g) = small else {
                    return Value::Map {
                        r#type: name,
                        entries: None,
                        more: 0,
                    };
                };
                self.group(layout, (g, 0), depth, limit, &mut entries);
            }
            // `1 << globalDepth` entries (a map made with a large size
            // hint has many tables however few entries it holds).
            (_, n) if n.count_ones() != 1 || n > 1 << 40 => {
                return unreadable(format!("map directory of {n} tables not plausible"));
            }
            (_, n) => {
                let Some(d) = directory else {
                    return Value::Map {
                        r#type: name,
                        entries: None,
                        more: 0,
                    };
                };
                for i in 0..n {
                    if entries.len() >= limit {
                        break;
                    }
                    let Some(t) = self.target(Buffer::Capture(d), 8 * i as u32) else {
                        continue;
                    };
                    self.table(layout, (i, t), depth, limit, &mut entries);
                }
            }
        }
        let more = used.saturating_sub(entries.len() as u64);
        Value::Map {
            r#type: name,
            entries: Some(entries),
            more,
        }
    }

    /// Adds the entries of the table of directory entry `i` captured into
    /// `t`, unless that table is shown at an earlier entry.
    fn table(
        &mut self,
        layout: &SwissMap,
        (i, t): (u64, u16),
        depth: u32,
        limit: usize,
        entries: &mut Vec<Entry>,
    ) {
        let Some(tb) = self.bytes(Buffer::Capture(t)) else {
            return;
        };
        let word = |at: u32| tb.get(at as usize..at as usize + 8).map(le);
        let (Some(index), Some(mask)) = (word(layout.index_at), word(layout.length_mask_at)) else {
            return;
        };
        if index != i {
            return;
        }
        let data = Buffer::Capture(t);
        let first = self.targets(data, layout.groups_at, 0).first().copied();
        let rest = self.targets(data, layout.groups_at, layout.group_size);
        let gsize = layout.group_size;
        for j in 0..=mask.min(SwissMap::MAX_TABLE_GROUPS as u64 - 1) as u32 {
            if entries.len() >= limit {
                return;
            }
            let (c, at) = match j {
                0 => (first, 0),
                _ => (rest.first().copied(), (j - 1) * gsize),
            };
            // A group is shown as far as it was captured (see `bucket`).
            let started = c
                .and_then(|c| self.bytes(Buffer::Capture(c)))
                .is_some_and(|b| b.len() >= at as usize + TOPHASH);
            match c {
                Some(c) if started => self.group(layout, (c, at), depth, limit, entries),
                _ => return,
            }
        }
    }

    /// Adds the entries of the full slots of the group at `(c, at)`.
    fn group(
        &mut self,
        layout: &SwissMap,
        (c, at): (u16, u32),
        depth: u32,
        limit: usize,
        entries: &mut Vec<Entry>,
    ) {
        let Some(ctrl) = self
            .bytes(Buffer::Capture(c))
            .and_then(|b| b.get((at + layout.ctrl_at) as usize..))
            .and_then(|b| b.get(..SwissMap::SLOTS as usize))
        else {
            return;
        };
        for (i, &byte) in ctrl.iter().enumerate() {
            if entries.len() >= limit {
                return;
            }
            if !SwissMap::full(byte) {
                continue;
            }
            let i = i as u32;
            let key = self.slot_field(&layout.key, c, at + layout.key.of(i), depth);
            let value = self.slot_field(&layout.value, c, at + layout.value.of(i), depth);
            entries.push(Entry { key, value });
        }
    }

    /// A key or an element stored at byte `at` of capture `c`: the value
    /// itself, or, stored behind a pointer (larger than 128 bytes), what
    /// it points to.
    fn slot_field(&mut self, field: &SlotField, c: u16, at: u32, depth: u32) -> Value {
        if !field.indirect {
            return self.value(field.stored, Buffer::Capture(c), at, depth + 1);
        }
        match self.target(Buffer::Capture(c), at) {
            Some(d) => self.value(field.ty, Buffer::Capture(d), 0, depth + 1),
            None => Value::Elided {
                r#type: self.types.get(field.ty).name.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{slot, words};
    use super::super::*;
    use crate::image::goruntime::fixtures::{int_map, swiss_map};
    use crate::image::Type;

    /// One bucket: `tophash`, then `(key, value)` for each listed slot.
    fn bucket(tophash: [u8; 8], slots: &[(usize, u64, u64)], overflow: u64) -> Vec<u8> {
        let mut b = vec![0u8; 144];
        b[..8].copy_from_slice(&tophash);
        for &(i, k, v) in slots {
            b[8 + i * 8..16 + i * 8].copy_from_slice(&k.to_le_bytes());
            b[72 + i * 8..80 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        b[136..].copy_from_slice(&overflow.to_le_bytes());
        b
    }

    #[test]
    fn a_growing_map_shows_old_buckets_not_evacuated_yet_once() {
        let mut t = TypeTable::default();
        let m = int_map(&mut t);
        let live = [9, 9, 0, 0, 0, 0, 0, 0];
        // B=2 growing from 2 buckets: old bucket 0 is evacuated (its entry
        // now in new bucket 2), old bucket 1 is not (new 1 and 3 are empty
        // and its entries are shown once, at new bucket 1), and it has an
        // overflow bucket. Bytes past `1 << B` new buckets are garbage.
        let mut new = Vec::new();
        new.extend(bucket([0; 8], &[], 0));
        new.extend(bucket([0; 8], &[], 0));
        new.extend(bucket([9, 0, 0, 0, 0, 0, 0, 0], &[(0, 4, 40)], 0));
        new.extend(bucket([0; 8], &[], 0));
        new.extend(bucket([9; 8], &[(0, 99, 99)], 0));
        let mut old = Vec::new();
        old.extend(bucket([2, 4, 4, 4, 4, 4, 4, 4], &[(0, 4, 40)], 0));
        old.extend(bucket(live, &[(0, 1, 10), (1, 3, 30)], 0xb000));
        let header = |count: u64, flags: u8, b: u8| {
            let mut h = words(&[count, 0, 0xa000, 0xc000, 0, 0]).expect("words");
            h[8] = flags;
            h[9] = b;
            Some(h)
        };
        let caps = vec![
            words(&[0x9000]),
            header(4, 0, 2),
            Some(new),
            Some(old),
            Some(bucket([9, 0, 0, 0, 0, 0, 0, 0], &[(0, 5, 50)], 0)),
        ];
        let s = slot(
            m,
            8,
            &[
                (Buffer::Image, 0, 1, 0),
                (Buffer::Capture(1), 16, 2, 0),
                (Buffer::Capture(1), 24, 3, 0),
                (Buffer::Capture(3), 144 + 136, 4, 0),
            ],
        );
        let v = decode(&mut t, &mut NoResolve, Limits::default(), &s, &caps);
        assert_eq!(v.go(), "map[int]int [1: 10, 3: 30, 5: 50, 4: 40]");
        // An element limit stops early and counts the rest.
        let limits = Limits {
            max_array_values: 2,
            ..Limits::default()
        };
        let v = decode(&mut t, &mut NoResolve, limits, &s, &caps);
        assert_eq!(v.go(), "map[int]int [1: 10, 3: 30, ...+2 more]");

        // Growing in place (`sameSizeGrow`): as many old buckets as new.
        let mut caps = caps;
        caps[1] = header(4, 8, 1);
        let v = decode(&mut t, &mut NoResolve, Limits::default(), &s, &caps);
        assert_eq!(v.go(), "map[int]int [1: 10, 3: 30, 5: 50, ...+1 more]");
    }

    #[test]
    fn a_bucket_cut_short_by_a_page_not_present_shows_what_was_read() {
        let mut t = TypeTable::default();
        let m = int_map(&mut t);
        // An overflow bucket whose tail (values of slots 1.., overflow
        // pointer) lies on a page the eBPF read could not fault in.
        let mut over = bucket([9, 0, 0, 0, 0, 0, 0, 0], &[(0, 5, 50)], 0);
        over.truncate(80);
        let caps = vec![
            words(&[0x9000]),
            {
                let mut h = words(&[3, 0, 0xa000, 0, 0, 0]).expect("words");
                h[9] = 0;
                Some(h)
            },
            Some(bucket(
                [9, 9, 0, 0, 0, 0, 0, 0],
                &[(0, 1, 10), (1, 2, 20)],
                0xb000,
            )),
            Some(over),
        ];
        let s = slot(
            m,
            8,
            &[
                (Buffer::Image, 0, 1, 0),
                (Buffer::Capture(1), 16, 2, 0),
                (Buffer::Capture(2), 136, 3, 0),
            ],
        );
        let v = decode(&mut t, &mut NoResolve, Limits::default(), &s, &caps);
        assert_eq!(v.go(), "map[int]int [1: 10, 2: 20, 5: 50]");
    }

    /// One group of a Swiss `map[int]int`: control bytes, then
    /// `(key, value)` for each listed slot.
    fn group(ctrl: [u8; 8], slots: &[(usize, u64, u64)]) -> Vec<u8> {
        let mut g = vec![0u8; 136];
        g[..8].copy_from_slice(&ctrl);
        for &(i, k, v) in slots {
            g[8 + i * 16..16 + i * 16].copy_from_slice(&k.to_le_bytes());
            g[16 + i * 16..24 + i * 16].copy_from_slice(&v.to_le_bytes());
        }
        g
    }

    /// A table: used, capacity, growthLeft, localDepth; index;
    /// groups.data, groups.lengthMask.
    fn table(index: u64, data: u64, mask: u64) -> Option<Vec<u8>> {
        words(&[0, index, data, mask])
    }

    /// Where a Swiss map's reads land, as the planner records them:
    /// header 1, small group 2, directory 3, then per table its header,
    /// first group and the rest.
    fn swiss_slot(m: TypeId, tables: u16) -> ValueSlot {
        let mut derefs = vec![
            (Buffer::Image, 0, 1, 0),
            (Buffer::Capture(1), 16, 2, 0),
            (Buffer::Capture(1), 16, 3, 0),
        ];
        for i in 0..tables {
            let at = 4 + 3 * i;
            derefs.push((Buffer::Capture(3), 8 * i as u32, at, 0));
            derefs.push((Buffer::Capture(at), 16, at + 1, 0));
            derefs.push((Buffer::Capture(at), 16, at + 2, 136));
        }
        slot(m, 8, &derefs)
    }

    fn int_swiss_map(t: &mut TypeTable) -> TypeId {
        let int = t.push(Type {
            name: "int".into(),
            size: 8,
            kind: TypeKind::Int,
        });
        swiss_map(t, int, int)
    }

    #[test]
    fn a_small_swiss_map_is_its_one_group() {
        let mut t = TypeTable::default();
        let m = int_swiss_map(&mut t);
        // Slots 0, 1 and 3 full (h2 bytes), 2 emptied by a delete.
        let g = group(
            [0x11, 0x22, 0x80, 0x33, 0x80, 0x80, 0x80, 0x80],
            &[(0, 1, 10), (1, 2, 20), (2, 9, 99), (3, 3, 30)],
        );
        let caps = vec![
            words(&[0x9000]),
            words(&[3, 0, 0xa000, 0, 0, 0]),
            Some(g),
            Some(Vec::new()),
        ];
        let s = swiss_slot(m, 0);
        let v = decode(&mut t, &mut NoResolve, Limits::default(), &s, &caps);
        assert_eq!(v.go(), "map[int]V [1: 10, 2: 20, 3: 30]");
        // Never had an entry: no group at all.
        let caps = vec![words(&[0x9000]), words(&[0, 0, 0, 0, 0, 0])];
        let v = decode(&mut t, &mut NoResolve, Limits::default(), &s, &caps);
        assert_eq!(v.go(), "map[int]V []");
    }

    #[test]
    fn a_swiss_directory_shows_each_table_once_and_counts_what_was_not_read() {
        let mut t = TypeTable::default();
        let m = int_swiss_map(&mut t);
        let full = [0x01; 8];
        let mut empty = [0x80; 8];
        // Table A (directory entries 0 and 1): two groups, the second with
        // a deleted slot (0xfe) still holding its old key.
        empty[0] = 0x05;
        let a0 = group(empty, &[(0, 1, 10)]);
        let a1 = group(
            [0x05, 0xfe, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80],
            &[(0, 2, 20), (1, 7, 70)],
        );
        // Table B (entry 2): one group, full.
        let b0 = group(
            full,
            &(0..8)
                .map(|i| (i, 100 + i as u64, i as u64))
                .collect::<Vec<_>>(),
        );
        // Table C (entry 3): 4 groups, only 2 of them captured.
        let c0 = group(empty, &[(0, 3, 30)]);
        let mut c_rest = group(empty, &[(0, 4, 40)]);
        c_rest.truncate(136 + 60);
        let header = words(&[14, 0, 0xa000, 4, 2, 0]);
        let caps = vec![
            words(&[0x9000]),
            header,
            Some(vec![0; 136]),
            words(&[0xb000, 0xb000, 0xc000, 0xd000]),
            table(0, 0xe000, 1),
            Some(a0.clone()),
            Some(a1.clone()),
            table(0, 0xe000, 1),
            Some(a0),
            Some(a1),
            table(2, 0xf000, 0),
            Some(b0),
            Some(Vec::new()),
            table(3, 0xf100, 3),
            Some(c0),
            Some(c_rest),
        ];
        let s = swiss_slot(m, 4);
        let v = decode(&mut t, &mut NoResolve, Limits::default(), &s, &caps);
        let b: Vec<String> = (0..8).map(|i| format!("{}: {i}", 100 + i)).collect();
        assert_eq!(
            v.go(),
            format!(
                "map[int]V [1: 10, 2: 20, {}, 3: 30, 4: 40, ...+2 more]",
                b.join(", ")
            )
        );
        // The element limit cuts inside a table.
        let limits = Limits {
            max_array_values: 3,
            ..Limits::default()
        };
        let v = decode(&mut t, &mut NoResolve, limits, &s, &caps);
        assert_eq!(v.go(), "map[int]V [1: 10, 2: 20, 100: 0, ...+11 more]");
        // A directory whose length is no power of two is not trusted.
        let mut bad = caps.clone();
        bad[1] = words(&[14, 0, 0xa000, 3, 2, 0]);
        let v = decode(&mut t, &mut NoResolve, Limits::default(), &s, &bad);
        assert_eq!(
            v.go(),
            "(unreadable map directory of 3 tables not plausible)"
        );
    }
}
