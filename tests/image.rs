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
    for tc in toolchains() {
        let image = Image::open(&tc.fixture("values")).expect("values");
        let name = &tc.name;
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
            assert!(matches!(types.underlying(ty).kind, TypeKind::Map { .. }));
            match map_layout(&types, ty) {
                // Go 1.23 and earlier (runtime/map.go): count, flags, B,
                // ... buckets, oldbuckets; a bucket of 8 tophash bytes, 8
                // keys, 8 values, overflow last.
                Some(MapLayout::Buckets(b)) if !tc.swiss() => {
                    assert_eq!(
                        (b.count_at, b.flags_at, b.b_at),
                        (0, 8, 9),
                        "{name} {}",
                        p.name
                    );
                    assert_eq!(b.key.at, 8, "{name} {}", p.name);
                    assert_eq!(b.value.at, 8 + 8 * b.key.stride, "{name} {}", p.name);
                    assert_eq!(b.overflow_at + 8, b.bucket_size, "{name} {}", p.name);
                }
                // Go 1.24 and later (internal/runtime/maps): Map, table,
                // groupsReference as map.go and table.go declare them; a
                // group of a control word and 8 interleaved slots.
                Some(MapLayout::Swiss(l)) if tc.swiss() => {
                    assert_eq!(
                        (l.header_size, l.used_at, l.dir_ptr_at, l.dir_len_at),
                        (48, 0, 16, 24),
                        "{name} {}",
                        p.name
                    );
                    assert_eq!(
                        (l.table_size, l.index_at, l.groups_at, l.length_mask_at),
                        (32, 8, 16, 24),
                        "{name} {}",
                        p.name
                    );
                    let slot = l.key.stride;
                    assert_eq!((l.ctrl_at, l.key.at), (0, 8), "{name} {}", p.name);
                    assert_eq!(l.group_size, 8 + 8 * slot, "{name} {}", p.name);
                    assert!(!l.key.indirect && !l.value.indirect);
                }
                other => panic!("{name} {}: layout {other:?}", p.name),
            }
            seen += 1;
        }
        assert_eq!(seen, 2, "{name}");
    }
}

#[test]
fn goroutine_offsets_come_from_each_toolchains_dwarf() {
    for tc in toolchains() {
        for build in ["seed", "seed-debug"] {
            let image = Image::open(&tc.fixture(build)).expect(build);
            let g = image.g.expect("runtime.g in DWARF");
            assert_eq!(g.stack_hi, 8, "{} {build}", tc.name);
            assert!(g.goid > g.stack_hi, "{} {build}", tc.name);
        }
    }
}

/// The runtime structures values point into (an itab's dynamic type, a
/// channel's counts, a closure's code address) are located by each
/// toolchain's own DWARF: `runtime.itab._type` (`internal/abi.ITab.Type`
/// since Go 1.22), `hchan<T>`'s `qcount` and `dataqsiz`, `runtime.funcval.fn`.
#[test]
fn interface_channel_and_func_layouts_come_from_each_toolchains_dwarf() {
    for tc in toolchains() {
        let image = Image::open(&tc.fixture("values")).expect("values");
        let mut types = TypeTable::default();
        let mut cache = Default::default();
        let mut first_arg = |func: &str| {
            let f = image
                .functions
                .iter()
                .find(|f| f.name == func)
                .unwrap_or_else(|| panic!("{func}"));
            let die = f
                .args()
                .next()
                .expect("an argument")
                .type_ref
                .expect("typed");
            let ty = image
                .resolve_type(&mut types, &mut cache, die)
                .expect("resolves");
            types.underlying(ty).kind.clone()
        };
        let name = &tc.name;
        match first_arg("main.ifaces") {
            TypeKind::Interface {
                empty: false,
                itab_type: Some(8),
            } => {}
            other => panic!("{name}: error is {other:?}"),
        }
        match first_arg("main.chans") {
            TypeKind::Chan {
                counts: Some((0, 8)),
            } => {}
            other => panic!("{name}: chan int is {other:?}"),
        }
        match first_arg("main.funcs") {
            TypeKind::Func { code_at: Some(0) } => {}
            other => panic!("{name}: func(int) int is {other:?}"),
        }
    }
}
