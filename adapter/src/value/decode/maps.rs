//! Decoding Go maps by their runtime layout (`image::goruntime`): the
//! bucket arrays of Go 1.23 and earlier, old buckets of a growing map and
//! overflow chains included.

use super::{le, unreadable, Decoder, MAX_NESTING};
use crate::image::goruntime::{map_layout, BucketMap, MapLayout};
use crate::image::TypeId;
use crate::plan::Buffer;
use crate::value::{Entry, Value};

impl<'a> Decoder<'a> {
    /// The map whose header pointer is at byte `at` of `from` (its value
    /// `address`), whose header type is `header`.
    pub(super) fn map(
        &mut self,
        name: String,
        header: Option<TypeId>,
        from: Buffer,
        at: u32,
        address: u64,
        depth: u32,
    ) -> Value {
        if address == 0 {
            return Value::Nil { r#type: name };
        }
        let layout = header.and_then(|h| map_layout(self.types, h));
        let (Some(layout), Some(hdr)) = (layout, self.target(from, at)) else {
            // A layout logprobe does not know, or a header not captured
            // (the depth limit): the contents are not shown.
            return Value::Map {
                r#type: name,
                entries: None,
                more: 0,
            };
        };
        match layout {
            MapLayout::Buckets(b) => self.bucket_map(name, &b, hdr, depth),
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
                .map_or(0, |d| (d.len() / layout.bucket_size.max(1) as usize) as u64)
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
    fn bucket(&self, layout: &BucketMap, c: u16, at: u32) -> Option<&'a [u8]> {
        let size = layout.bucket_size as usize;
        self.bytes(Buffer::Capture(c))?
            .get(at as usize..at as usize + size)
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
                let k = at + layout.keys_at + i * layout.key_size;
                let v = at + layout.values_at + i * layout.value_size;
                let key = self.value(layout.key, Buffer::Capture(c), k, depth + 1);
                let value = self.value(layout.value, Buffer::Capture(c), v, depth + 1);
                entries.push(Entry { key, value });
            }
            match self.target(Buffer::Capture(c), at + layout.overflow_at) {
                Some(next) => (c, at) = (next, 0),
                None => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{slot, words};
    use super::super::*;
    use crate::image::goruntime::fixtures::int_map;

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
}
