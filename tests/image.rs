//! Facts read from the fixtures' own binaries: the Go runtime layouts
//! (`image::goruntime`) come from DWARF, and the table kept for binaries
//! without DWARF agrees with what DWARF says.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use logprobe::image::goruntime::{map_layout, MapLayout};
use logprobe::image::{Image, TypeKind, TypeTable};

#[test]
fn g_offsets_from_dwarf_match_the_table_for_binaries_without_it() {
    let from_dwarf = Image::open(&fixture("seed")).expect("seed").g;
    let g = from_dwarf.expect("runtime.g in the seed's DWARF");
    // `g` begins with its stack (lo, hi); the id comes later.
    assert_eq!(g.stack_hi, 8);
    assert!(g.goid > g.stack_hi);
    for build in ["seed-nodwarf", "seed-stripped"] {
        let image = Image::open(&fixture(build)).expect(build);
        assert!(!image.has_dwarf, "{build}");
        assert_eq!(image.g, from_dwarf, "{build}");
    }
}

#[test]
fn map_layouts_come_from_each_map_types_dwarf() {
    let image = Image::open(&fixture("values")).expect("values");
    let f = image
        .functions
        .iter()
        .position(|f| f.name == "main.maps")
        .expect("main.maps");
    let mut types = TypeTable::default();
    let mut cache = Default::default();
    let mut seen = 0;
    for p in image.functions[f].args() {
        let die = p.type_ref.expect("typed");
        let ty = image
            .resolve_type(&mut types, &mut cache, die)
            .expect("resolves");
        let TypeKind::Map { hmap: Some(h) } = types.underlying(ty).kind else {
            panic!("{} is not a map", p.name);
        };
        let Some(MapLayout::Buckets(b)) = map_layout(&types, h) else {
            panic!("{}: no layout", p.name);
        };
        // Go 1.19's hmap: count, flags, B, ... buckets, oldbuckets; a
        // bucket of 8 tophash bytes, 8 keys, 8 values, overflow last.
        assert_eq!((b.count_at, b.flags_at, b.b_at), (0, 8, 9), "{}", p.name);
        assert_eq!(b.keys_at, 8, "{}", p.name);
        assert_eq!(b.values_at, 8 + 8 * b.key_size, "{}", p.name);
        assert_eq!(b.overflow_at + 8, b.bucket_size, "{}", p.name);
        seen += 1;
    }
    assert_eq!(seen, 2);
}
