//! End-to-end tests of C, C++ and Rust values (issue 12): the real binary
//! traces `fixtures/c/values.c`, `fixtures/cpp/values.cpp` and
//! `fixtures/rust/values.rs`, built at -O0 (`…-debug`) and -O2 (Rust
//! opt-level 0 and 2), under every backend, and the lines are compared
//! with the exact expected text: C and C++ in gdb's notation, Rust in
//! `{:?}`'s. Each fixture prints what its functions compute, which the
//! tests check beside the trace.
//!
//! At -O2 a value is `<optimized out>` only where DWARF has no place for
//! it at the probe; `optimized_out_is_what_dwarf_says` checks each one
//! against the DWARF location it comes from.
//!
//! Values that travel in XMM registers (floats, and structs of them) are
//! tested apart: the eBPF backend cannot read a non-Go program's XMM
//! registers (they are read through a SIGURG handler, which C, C++ and
//! Rust programs do not have), so that test says so and skips under eBPF.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Output;

use common::dap::*;
use common::*;
use serde_json::json;

/// `s` with every address of four or more hex digits written `0xADDR`
/// and thread ids as `T` (a null pointer stays `0x0`, a small flag
/// `0x8`).
fn masked(s: &str) -> String {
    let s = regex::Regex::new(r"0x[0-9a-f]{4,}")
        .unwrap()
        .replace_all(s, "0xADDR");
    regex::Regex::new(r"thread\(\d+\)")
        .unwrap()
        .replace_all(&s, "thread(T)")
        .into_owned()
}

/// The trace lines of a run, masked, one per line.
fn lines(out: &Output) -> String {
    trace_lines(out).iter().map(|l| masked(l) + "\n").collect()
}

/// Runs `regex` over `build` and checks the trace lines `keep` keeps
/// and what the program printed.
fn check_kept(
    (backend, build): (&str, &str),
    regex: &str,
    extra: &[&str],
    keep: fn(&str) -> bool,
    expected: &str,
    printed: &[&str],
) {
    let out = trace(backend, regex, build, &[], extra);
    assert!(out.status.success(), "{backend} {build}: {}", stderr(&out));
    let kept: String = lines(&out)
        .lines()
        .filter(|l| keep(l))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(kept, expected, "{backend} {build}");
    let program = stdout(&out);
    for p in printed {
        assert!(
            program.contains(p),
            "{backend} {build}: {p:?} not in {program}"
        );
    }
}

/// [`check_kept`] of every line.
fn check(
    backend: &str,
    regex: &str,
    build: &str,
    extra: &[&str],
    expected: &str,
    printed: &[&str],
) {
    check_kept((backend, build), regex, extra, |_| true, expected, printed);
}

const C_FUNCS: &str = r"^(add|scalars|strings|edges|by_memory|pointers|arrays|enums|callbacks|double_it|typedefs|make_big|make_pair|make_ptr|greet|is_even|low_byte|logline|scaled|summed)$";

/// Integers, characters, strings (one cut at the limit, one running into
/// an unmapped page, one ending just before another), structs in memory,
/// pointers followed (a cycle shown by address), arrays, enums (a flag
/// enum as gdb names its bits), bitfields, function pointers, typedefs,
/// results in RAX:RDX and through the caller's buffer.
const C_O0: &str = r#"> thread(T): add(2, 2)
>> thread(T): add => (4)
> thread(T): scalars(65 'A', 200 '\310', -300, 60000, -70000, 80000, -9000000000, 10000000000, true)
>> thread(T): scalars => (1000069966)
> thread(T): strings(0xADDR "hello", 0xADDR "mutable", 0x0, 0xADDR "0123456789012345678901234567890123456789012345678901234567890123"..., 0xADDR "a\t\001\351z")
>> thread(T): strings => (182)
> thread(T): edges(0xADDR <error: string at 0xADDR runs into unreadable memory after 3 bytes>, 0xADDR "abcdefg")
>> thread(T): edges => (2)
> thread(T): by_memory({a = 10, b = 20, c = 30}, 9, 0xADDR -> {x = 1, y = 2})
>> thread(T): by_memory => (70)
> thread(T): pointers(0xADDR -> {x = 1, y = 2}, 0x0, 0xADDR -> {val = 1, next = 0xADDR -> {val = 2, next = 0xADDR}}, 0xADDR -> 0xADDR -> 42, 0xADDR)
>> thread(T): pointers => (45)
> thread(T): arrays(0xADDR -> {name = "abc\000\000\000\000", tags = {7, 8, 9}, at = {x = 3, y = 4}, grid = {{1, 2, 3}, {4, 5, 6}}}, 0xADDR -> 10)
>> thread(T): arrays => (44)
> thread(T): enums(GREEN, 42, P_WRITE, (P_READ | P_EXEC), (P_READ | unknown: 0x8))
>> thread(T): enums => (BLUE)
> thread(T): callbacks(0xADDR <double_it>, 0x0, 21)
> thread(T): double_it(21, 2)
>> thread(T): double_it => (42)
>> thread(T): callbacks => (42)
> thread(T): typedefs(7, 200 '\310', -3)
>> thread(T): typedefs => (204)
> thread(T): make_big(6)
>> thread(T): make_big => ({a = 6, b = 12, c = 18})
> thread(T): make_pair(7)
>> thread(T): make_pair => ({lo = 7, hi = -7})
> thread(T): make_ptr(0xADDR -> {x = 1, y = 2})
>> thread(T): make_ptr => (0xADDR -> {x = 2, y = 2})
> thread(T): greet(1)
>> thread(T): greet => (0xADDR "hi there")
> thread(T): is_even(4)
>> thread(T): is_even => (true)
> thread(T): low_byte(4660)
>> thread(T): low_byte => (52 '4')
> thread(T): logline(0xADDR -> {x = 2, y = 2}, 3)
>> thread(T): logline => (8)
> thread(T): scaled(2, 3, 0xADDR "y")
>> thread(T): scaled => (6)
> thread(T): scaled(1, 3, 0xADDR "x")
>> thread(T): scaled => (3)
> thread(T): summed({a = 10, b = 20, c = 30}, 4)
>> thread(T): summed => (40)
"#;

/// The same at -O2: GCC clones `scaled` (`.constprop`: `k` is the
/// constant 3, `unused` is gone) and `summed` (`.isra`: `b` is taken
/// apart, the result may be too).
const C_O2_CHANGES: [(&str, &str); 3] = [
    (
        r#"scaled(2, 3, 0xADDR "y")"#,
        "scaled(2, 3, <optimized out>)",
    ),
    (
        r#"scaled(1, 3, 0xADDR "x")"#,
        "scaled(1, 3, <optimized out>)",
    ),
    (
        "summed({a = 10, b = 20, c = 30}, 4)\n>> thread(T): summed => (40)",
        "summed(<optimized out>, 4)\n>> thread(T): summed => (<optimized out>)",
    ),
];

const C_PRINTED: [&str; 6] = [
    "scalars 1000069966\n",
    "strings 182\n",
    "pointers 45\n",
    "make_big 6 12 18\n",
    "scaled 3 6\n",
    "summed 40\n",
];

fn with_changes(text: &str, changes: &[(&str, &str)]) -> String {
    let mut out = text.to_string();
    for (from, to) in changes {
        assert!(out.contains(from), "{from}");
        out = out.replace(from, to);
    }
    out
}

#[test]
fn c_values_are_shown_as_gdb_shows_them() {
    for backend in backends() {
        check(backend, C_FUNCS, "c-values-debug", &[], C_O0, &C_PRINTED);
        let o2 = with_changes(C_O0, &C_O2_CHANGES);
        check(backend, C_FUNCS, "c-values", &[], &o2, &C_PRINTED);
    }
}

/// A binary whose debug information was moved into a file of its own
/// (`objcopy --only-keep-debug`, `--strip-debug`, `--add-gnu-debuglink`;
/// the file is in `.debug/` beside it, one of the places gdb looks) is
/// traced with the same values as the build that keeps it.
#[test]
fn separate_debug_info_is_found_through_gnu_debuglink() {
    for backend in backends() {
        check(backend, C_FUNCS, "c-values-split", &[], C_O0, &C_PRINTED);
    }
}

/// Floats, and structs of them, travel in XMM registers: arguments in
/// XMM0-7, `struct vec2` in two, `struct mixed` in RSI and XMM2, results
/// in XMM0 and XMM1 (and RAX beside XMM0). gdb prints a `float` with 9
/// significant digits and a `double` with 17.
const C_FLOATS: &str = r#"> thread(T): floats(1.5, -2.25, 0.100000001, 1e+21)
>> thread(T): floats => (1e+21)
> thread(T): structs({x = 1, y = 2}, {x = 0.5, y = -1.5}, {id = 7, w = 2.5}, {a = 3, b = 4, c = 5}, {a = 1.25, b = -0.5})
>> thread(T): structs => (23)
> thread(T): unions({i = 1069547520, f = 1.5, bytes = "\000\000\300?"}, {ready = 1, mode = 5, level = -3, kind = 107 'k'})
>> thread(T): unions => (3.5)
> thread(T): many(1, 2, 3, 4, 5, 6, 7, 8, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5)
>> thread(T): many => (96)
> thread(T): make_vec(3)
>> thread(T): make_vec => ({x = 3, y = 1.5})
> thread(T): make_mixed(4)
>> thread(T): make_mixed => ({id = 4, w = 6})
"#;

#[test]
fn c_floats_in_xmm_registers() {
    let funcs = r"^(floats|structs|unions|many|make_vec|make_mixed)$";
    for backend in backends() {
        let printed = ["floats 1e+21\n", "make_vec 3 1.5\n", "make_mixed 4 6\n"];
        check(backend, funcs, "c-values-debug", &[], C_FLOATS, &printed);
        // At -O2 GCC keeps no location for `m`, which `structs` reads
        // only in part.
        let o2 = with_changes(
            C_FLOATS,
            &[("{id = 7, w = 2.5}, {a = 3", "<optimized out>, {a = 3")],
        );
        check(backend, funcs, "c-values", &[], &o2, &printed);
    }
}

#[test]
fn limits_cut_c_strings_arrays_and_pointers() {
    let expected = r#"> thread(T): strings(0xADDR "hell"..., 0xADDR "muta"..., 0x0, 0xADDR "0123"..., 0xADDR "a\t\001\351"...)
>> thread(T): strings => (182)
> thread(T): pointers(0xADDR -> {x = 1, y = 2}, 0x0, 0xADDR -> {val = 1, next = 0xADDR}, 0xADDR -> 0xADDR, 0xADDR)
>> thread(T): pointers => (45)
> thread(T): arrays(0xADDR -> {name = "a"..., tags = {7...}, at = {x = 3, y = 4}, grid = {{1...}...}}, 0xADDR -> 10)
>> thread(T): arrays => (44)
"#;
    let limits = [
        "--max-string-len",
        "4",
        "--max-array-values",
        "1",
        "--max-depth",
        "1",
    ];
    for backend in backends() {
        for build in ["c-values-debug", "c-values"] {
            let funcs = r"^(strings|pointers|arrays)$";
            check(backend, funcs, build, &limits, expected, &[]);
        }
    }
}

const RUST_FUNCS: &str = r"^(values::(work|shapes|aggregates|smart|nested|largest|big_ret|pair_ret|owned|fallible|Point::scale|logline|geo::inner::deep)|<values::Point as values::Area>::area)$";

/// Names as rustc-demangle prints them without the hash; `&str` and
/// slices from their two registers; String, Vec, Option, Result, Box,
/// Rc, Arc, `&dyn Trait` (the value its vtable names), tuples, structs,
/// enums (niche-encoded `Result<u32, String>` and `Option<&T>` too) as
/// `{:?}` shows them; a result through the caller's buffer (`big_ret`,
/// `shapes`, `owned`) and in RAX:RDX (`pair_ret`).
const RUST_O0: &str = r#"> thread(T): values::work(40, "hello", Point { x: 1, y: 2 }, [1, 2, 3], Some(7))
>> thread(T): values::work => (586)
> thread(T): values::shapes(Rect { w: 3, h: 4 }, Err("bad"), Point { x: 5, y: 6 }, (7, true))
>> thread(T): values::shapes => (Some("12-bad-5-7-true"))
> thread(T): values::shapes(Circle(1.5), Ok(9), Point { x: 5, y: 6 }, (8, false))
>> thread(T): values::shapes => (Some("1-9-5-8-false"))
> thread(T): values::aggregates(Point { x: 1, y: 2 }, [1, 2, 3, 4], Green, "owned", [7, 8, 9], [4, 5, 6])
>> thread(T): values::aggregates => (Point { x: 57, y: 1 })
> thread(T): values::smart(Point { x: 3, y: 4 }, "arc", Point { x: 1, y: 2 }, Some(Point { x: 1, y: 2 }), Some(9))
> thread(T): <values::Point as values::Area>::area(Point { x: 1, y: 2 })
>> thread(T): values::smart => (18)
> thread(T): values::smart(Point { x: 3, y: 4 }, "arc", Point { x: 1, y: 2 }, None, None)
> thread(T): <values::Point as values::Area>::area(Point { x: 1, y: 2 })
>> thread(T): values::smart => (8)
> thread(T): values::nested(Team { name: "core", members: ["ann", "bob"], lead: Some(Point { x: 7, y: 8 }) }, Meters(2.5), Unit, ["x", "y"])
>> thread(T): values::nested => (17)
> thread(T): values::largest([3, 9, 4])
>> thread(T): values::largest => (9)
> thread(T): values::largest([2.5, 1.5])
> thread(T): values::big_ret(10)
>> thread(T): values::big_ret => ([10, 11, 12, 13, 14])
> thread(T): values::pair_ret(21)
>> thread(T): values::pair_ret => ((21, 42))
> thread(T): values::owned(3)
>> thread(T): values::owned => ("ababab")
> thread(T): values::fallible(5)
>> thread(T): values::fallible => (Ok(5))
> thread(T): values::fallible(-5)
>> thread(T): values::fallible => (Err("negative: -5"))
> thread(T): values::Point::scale(Point { x: 1, y: 2 }, 3)
>> thread(T): values::Point::scale => (Point { x: 3, y: 6 })
> thread(T): <values::Point as values::Area>::area(Point { x: 1, y: 2 })
> thread(T): values::logline(Point { x: 1, y: 2 }, 3)
>> thread(T): values::logline => (5)
> thread(T): values::geo::inner::deep(4)
>> thread(T): values::geo::inner::deep => (5)
"#;

const RUST_PRINTED: [&str; 5] = [
    "work 586\n",
    "shapes Some(\"12-bad-5-7-true\")\n",
    "aggregates Point { x: 57, y: 1 }\n",
    "nested 17\n",
    "owned \"ababab\"\n",
];

/// The lines that show no float (in an XMM register): all but the
/// results of `area` and of `largest::<f64>` (which has the name of
/// `largest::<i32>`, whose result is 9).
fn no_rust_float(line: &str) -> bool {
    !line.contains("area => ") && (!line.contains("largest => ") || line.ends_with("=> (9)"))
}

#[test]
fn rust_values_are_shown_as_debug_shows_them() {
    for backend in backends() {
        let at = (backend, "rust-values-debug");
        check_kept(at, RUST_FUNCS, &[], no_rust_float, RUST_O0, &RUST_PRINTED);
        // At opt-level 2, `owned` ends in a jump to `str::repeat` (a tail
        // call): it has no RET of its own to probe.
        let o2 = with_changes(
            RUST_O0,
            &[(">> thread(T): values::owned => (\"ababab\")\n", "")],
        );
        let at = (backend, "rust-values");
        check_kept(at, RUST_FUNCS, &[], no_rust_float, &o2, &RUST_PRINTED);
    }
}

/// Rust's v0 symbol mangling (`_RNv…`), demangled as rustc-demangle
/// prints it: an inherent method as `<values::Point>::scale`, a generic
/// function with its arguments (`values::largest::<i32>`), which legacy
/// symbols do not carry.
#[test]
fn rust_v0_symbols_are_named_as_rustc_demangle_prints_them() {
    let funcs = r"^(values::work|values::largest::<i32>|<values::Point>::scale)$";
    let expected = r#"> thread(T): values::work(40, "hello", Point { x: 1, y: 2 }, [1, 2, 3], Some(7))
>> thread(T): values::work => (586)
> thread(T): values::largest::<i32>([3, 9, 4])
>> thread(T): values::largest::<i32> => (9)
> thread(T): <values::Point>::scale(Point { x: 1, y: 2 }, 3)
>> thread(T): <values::Point>::scale => (Point { x: 3, y: 6 })
"#;
    for backend in backends() {
        check(
            backend,
            funcs,
            "rust-values-v0",
            &[],
            expected,
            &RUST_PRINTED,
        );
    }
}

#[test]
fn rust_floats_in_xmm_registers() {
    let funcs = r"^(values::(scalars|largest)|<values::Point as values::Area>::area)$";
    let expected = r#"> thread(T): values::scalars(-8, 16, -32, -64, 128, 1.5, -2.25, 'é', true, 99)
>> thread(T): values::scalars => (372.25)
> thread(T): <values::Point as values::Area>::area(Point { x: 1, y: 2 })
>> thread(T): <values::Point as values::Area>::area => (2.0)
> thread(T): <values::Point as values::Area>::area(Point { x: 1, y: 2 })
>> thread(T): <values::Point as values::Area>::area => (2.0)
> thread(T): values::largest([3, 9, 4])
>> thread(T): values::largest => (9)
> thread(T): values::largest([2.5, 1.5])
>> thread(T): values::largest => (2.5)
> thread(T): <values::Point as values::Area>::area(Point { x: 1, y: 2 })
>> thread(T): <values::Point as values::Area>::area => (2.0)
"#;
    for backend in backends() {
        for build in ["rust-values-debug", "rust-values"] {
            check(backend, funcs, build, &[], expected, &["scalars 372.25\n"]);
        }
    }
}

const CPP_FUNCS: &str =
    r"^(geo::(Shape::(count|sides)|Square::area|add|biggest<int>)|strings|make|mid|modes)$";

/// Methods and free functions under their qualified names, a class with
/// its base as `<geo::Shape>` (the vtable pointer by address), a
/// std::string by reference, by value (a class passed by hidden
/// reference), inside a struct and as a result (through the caller's
/// buffer), an enum class as gdb names its values.
const CPP: &str = r#"> thread(T): geo::Shape::count(2)
>> thread(T): geo::Shape::count => (3)
> thread(T): geo::Shape::sides(0xADDR -> {_vptr.Shape = 0xADDR, sides_ = 4})
>> thread(T): geo::Shape::sides => (4)
> thread(T): geo::Square::area(0xADDR -> {<geo::Shape> = {_vptr.Shape = 0xADDR, sides_ = 4}, side_ = 3})
> thread(T): geo::add(1, 2)
>> thread(T): geo::add => (3)
> thread(T): geo::biggest<int>(3, 9)
>> thread(T): geo::biggest<int> => (9)
> thread(T): strings(@0xADDR: "world", "a copy longer than the small string buffer", 0xADDR "cstr", {label = "held", n = 7})
>> thread(T): strings => (59)
> thread(T): make(5)
>> thread(T): make => ("xxxxx")
> thread(T): mid({x = 1, y = 2}, @0xADDR: {x = 3, y = 4})
>> thread(T): mid => ({x = 2, y = 3})
> thread(T): modes(geo::Mode::Auto, true)
>> thread(T): modes => (8)
"#;

/// The lines that show no float: all but `geo::add(double, double)`
/// (traced under the name of `geo::add(int, int)`, called with 1 and 2)
/// and `Square::area`'s result.
fn no_cxx_float(line: &str) -> bool {
    let add = !line.contains("geo::add") || line.ends_with("add(1, 2)") || line.ends_with("=> (3)");
    add && !line.contains("area => ")
}

#[test]
fn cxx_values_are_shown_as_gdb_shows_them() {
    let printed = ["strings 59\n", "make xxxxx\n", "mid 2 3\n", "modes 8\n"];
    for backend in backends() {
        for build in ["cpp-values-debug", "cpp-values"] {
            check_kept(
                (backend, build),
                CPP_FUNCS,
                &[],
                no_cxx_float,
                CPP,
                &printed,
            );
        }
    }
}

#[test]
fn cxx_floats_in_xmm_registers() {
    let funcs = r"^geo::(Square::area|add|biggest<double>)$";
    let expected = r#"> thread(T): geo::Square::area(0xADDR -> {<geo::Shape> = {_vptr.Shape = 0xADDR, sides_ = 4}, side_ = 3})
>> thread(T): geo::Square::area => (9)
> thread(T): geo::add(1.5, 2)
>> thread(T): geo::add => (3.5)
> thread(T): geo::add(1, 2)
>> thread(T): geo::add => (3)
> thread(T): geo::biggest<double>(2.5, 1.5)
>> thread(T): geo::biggest<double> => (2.5)
"#;
    for backend in backends() {
        for build in ["cpp-values-debug", "cpp-values"] {
            check(backend, funcs, build, &[], expected, &["area 9 sides 4"]);
        }
    }
}

/// The `<optimized out>` values of the -O2 C build are what DWARF says:
/// no location at all, or one naming a value only the caller has.
#[test]
fn optimized_out_is_what_dwarf_says() {
    use logprobe::image::{AtEntry, Image};

    let image = Image::open(&fixture("c-values")).unwrap();
    let named = |name: &str| {
        image
            .functions
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let gone = |name: &str, arg: usize| -> String {
        let f = named(name);
        match &image.entry_places(f, &[]).unwrap()[arg] {
            AtEntry::OptimizedOut(why) => why.clone(),
            other => panic!("{name} argument {arg}: {other:?}"),
        }
    };
    // `structs` reads `m` in part: GCC keeps no DW_AT_location for it.
    assert_eq!(gone("structs", 2), "optimized away");
    // The `.constprop` clone of `scaled` does not use `unused`: its
    // location is DW_OP_GNU_parameter_ref, the caller's value; `k` is
    // DW_AT_const_value 3.
    assert!(
        gone("scaled", 2).starts_with("location ParameterRef"),
        "{}",
        gone("scaled", 2)
    );
    let scaled = named("scaled");
    assert!(matches!(
        &image.entry_places(scaled, &[]).unwrap()[1],
        AtEntry::Pieces(p) if matches!(p[0].place, logprobe::image::Place::Bytes(_))
    ));
    // The `.isra` clone of `summed` gets `b.a` and `b.c` apart, which
    // DWARF does not describe; the clone may return nothing.
    assert_eq!(gone("summed", 0), "optimized away");
    let sub = image.subprogram(named("summed")).unwrap();
    assert!(!sub.args_by_abi && !sub.results_by_abi);
    assert!(image.subprogram(scaled).unwrap().results_by_abi);
}

/// `--json` gives the typed tree: a C enum and a Rust enum variant.
#[test]
fn json_events_carry_c_and_rust_kinds() {
    for backend in backends() {
        let out = trace(backend, "^enums$", "c-values-debug", &[], &["--json"]);
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        let call: serde_json::Value =
            serde_json::from_str(stdout(&out).lines().find(|l| l.starts_with('{')).unwrap())
                .unwrap();
        assert_eq!(call["function"], "enums");
        assert_eq!(
            call["values"][4]["value"],
            json!({"kind": "enum", "type": "enum perm", "value": 9, "name": "(P_READ | unknown: 0x8)"})
        );
        let out = trace(backend, r"^values::work$", "rust-values", &[], &["--json"]);
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        let call: serde_json::Value =
            serde_json::from_str(stdout(&out).lines().find(|l| l.starts_with('{')).unwrap())
                .unwrap();
        assert_eq!(call["function"], "values::work");
        let o = &call["values"][4]["value"];
        assert_eq!(o["kind"], "struct", "{o}");
        assert_eq!(o["type"], "core::option::Option<u32>::Some");
        assert_eq!(o["fields"][0]["value"], json!({"kind": "uint", "value": 7}));
    }
}

/// `logprobe functions`: sorted, filtered by a regular expression, the
/// positions in a column as wide as the names need (up to 40).
#[test]
fn functions_are_listed_in_columns_the_names_need() {
    let out = run_with_timeout(
        {
            let mut c = logprobe();
            c.arg("functions")
                .arg(fixture("rust-values-debug"))
                .arg("^values::");
            c
        },
        std::time::Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<&str> = text.lines().collect();
    let names: Vec<&str> = rows.iter().map(|r| r.split("  ").next().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(names.contains(&"values::work"), "{text}");
    assert!(names.iter().all(|n| n.starts_with("values::")), "{text}");
    let source = root().join("fixtures/rust/values.rs");
    let work = rows
        .iter()
        .find(|r| r.starts_with("values::work "))
        .unwrap();
    assert!(
        work.ends_with(&format!("{}:70", source.display())),
        "{work}"
    );
    // Every position starts in one column, right after the longest name.
    let width = names.iter().map(|n| n.len()).max().unwrap();
    for r in &rows {
        assert_eq!(r.find('/'), Some(width + 2), "{r}");
    }
    // Over a whole Rust program, a very long name does not widen the column.
    let out = run_with_timeout(
        {
            let mut c = logprobe();
            c.arg("functions").arg(fixture("rust-values-debug"));
            c
        },
        std::time::Duration::from_secs(60),
    );
    let text = stdout(&out);
    let short = text
        .lines()
        .find(|l| l.starts_with("values::work "))
        .unwrap();
    assert!(short.find('/').unwrap() <= 42, "{short}");
}

/// The line of `fixture`'s source marked "the logpoint's line".
fn marked_line(source: &str) -> u64 {
    let text = std::fs::read_to_string(root().join(source)).unwrap();
    let at = text
        .lines()
        .position(|l| l.contains("the logpoint's line"))
        .unwrap();
    at as u64 + 1
}

/// A logpoint in a .c file and in a .rs file, with expressions over
/// struct fields through a pointer and a reference, in each language's
/// notation, under every backend and at both optimization levels.
#[test]
fn logpoints_in_c_and_rust_sources() {
    let cases = [
        (
            "fixtures/c/values.c",
            "c-values-debug",
            "p.x={p.x} p={p} total={total} k={k}",
            "p.x=2 p=0xADDR -> {x = 2, y = 2} total=6 k=3\n",
        ),
        (
            "fixtures/rust/values.rs",
            "rust-values-debug",
            "p.x={p.x} p={p} total={total} k={k}",
            "p.x=1 p=Point { x: 1, y: 2 } total=3 k=3\n",
        ),
        (
            "fixtures/c/values.c",
            "c-values",
            "p.x={p.x} p={p} total={total} k={k}",
            "p.x=2 p=0xADDR -> {x = 2, y = 2} total=6 k=3\n",
        ),
        (
            "fixtures/rust/values.rs",
            "rust-values",
            "p.x={p.x} p={p} total={total} k={k}",
            "p.x=1 p=Point { x: 1, y: 2 } total=3 k=3\n",
        ),
    ];
    for backend in backends() {
        for (source, build, message, expected) in cases {
            let path = root().join(source).display().to_string();
            let line = marked_line(source);
            let (mut c, _adapter) = stdio_adapter();
            launch(&mut c, backend, build, &[], json!({}));
            let bps = json!([{"line": line, "logMessage": message}]);
            let r = c.ok(
                "setBreakpoints",
                json!({"source": {"path": path}, "breakpoints": bps}),
            );
            assert_eq!(r["body"]["breakpoints"][0]["verified"], false, "{r}");
            c.ok("configurationDone", json!({}));
            let armed = c.wait_event(|e| e["event"] == "breakpoint");
            assert_eq!(armed["body"]["breakpoint"]["verified"], true, "{armed}");
            let (console, _) = c.run_to_end();
            assert_eq!(masked(&console), expected, "{backend} {build}");
            let hit = &c.outputs("console")[0]["body"];
            assert_eq!(hit["line"], line, "{backend} {build}");
            assert_eq!(c.exit_code(), Some(0));
            c.ok("disconnect", json!({}));
        }
    }
}

/// Under eBPF a launched C, C++ or Rust program is given a SIGURG handler
/// (a library preloaded from a memfd), so that its floats are read through
/// a signal frame as a Go program's are; at -O2 `report` begins with
/// `ADDSD X0, X0`, which a uprobe would lose `x` to, so the program is
/// armed once it is mapped (a hardware breakpoint needs its run-time
/// address). Beyond that handler it sees nothing of logprobe: no
/// variable in its environment or its children's, no descriptor more than
/// under ptrace, and an LD_PRELOAD of its own is kept.
#[test]
fn a_launched_program_sees_only_a_sigurg_handler_of_logprobe() {
    let expected = "> thread(T): report(2.25)\n>> thread(T): report => (4)\n";
    let libm = "/lib/x86_64-linux-gnu/libm.so.6";
    for build in ["c-environ", "c-environ-debug"] {
        for own in [None, Some(libm)] {
            let mut seen = Vec::new();
            for backend in backends() {
                let mut cmd = logprobe();
                cmd.args(["trace", "--backend", backend, "^report$", "--"])
                    .arg(fixture(build));
                if let Some(lib) = own {
                    cmd.env("LD_PRELOAD", lib);
                }
                let out = run_with_timeout(cmd, std::time::Duration::from_secs(60));
                assert!(out.status.success(), "{backend} {build}: {}", stderr(&out));
                assert_eq!(lines(&out), expected, "{backend} {build}");
                let program: String = stdout(&out)
                    .lines()
                    .filter(|l| !l.starts_with('>'))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let preload = own.unwrap_or("(unset)");
                assert!(
                    program.contains(&format!("\nchild LD_PRELOAD={preload}\n"))
                        && program.starts_with(&format!("LD_PRELOAD={preload}\n")),
                    "{backend} {build}: {program}"
                );
                assert!(!program.contains("LOGPROBE_"), "{backend}: {program}");
                let handler = if backend == "ebpf" {
                    "handled"
                } else {
                    "default"
                };
                assert!(
                    program.contains(&format!("SIGURG: {handler}\n")),
                    "{backend} {build}: {program}"
                );
                seen.push(program.replace("SIGURG: handled", "SIGURG: default"));
            }
            seen.dedup();
            assert_eq!(seen.len(), 1, "{build}: the backends differ: {seen:?}");
        }
    }
}

/// Under eBPF a C function that leaves only through its RETs has its
/// returns seen by one uretprobe on its entry (cheaper than a probe on
/// each RET, which the kernel single-steps); ptrace keeps its RET
/// breakpoints. Both must see the same returns: recursion, several RETs,
/// a call left by longjmp (no return), the call that longjmp went back
/// to, a tail call at -O2 (no RET of its own, no return shown).
#[test]
fn c_returns_are_seen_alike_through_uretprobes_and_ret_probes() {
    let funcs = r"^(depth|sign|bail|guarded|helper|tail)$";
    let expected = "> thread(T): depth(3)
> thread(T): depth(2)
> thread(T): depth(1)
> thread(T): depth(0)
>> thread(T): depth => (0)
>> thread(T): depth => (1)
>> thread(T): depth => (2)
>> thread(T): depth => (3)
> thread(T): sign(7)
>> thread(T): sign => (1)
> thread(T): sign(0)
>> thread(T): sign => (0)
> thread(T): sign(-5)
>> thread(T): sign => (-1)
> thread(T): guarded(4)
> thread(T): bail(4)
>> thread(T): guarded => (-4)
> thread(T): tail(1)
> thread(T): helper(2)
>> thread(T): helper => (4)
";
    let printed = ["depth 3\n", "sign -1 0 1\n", "guarded -4\n", "tail 4\n"];
    for backend in backends() {
        check(backend, funcs, "c-returns", &[], expected, &printed);
        let o0 = with_changes(
            expected,
            &[(
                ">> thread(T): helper => (4)\n",
                ">> thread(T): helper => (4)\n>> thread(T): tail => (4)\n",
            )],
        );
        check(backend, funcs, "c-returns-debug", &[], &o0, &printed);
    }
}

/// The functions `logprobe probes` gives a uretprobe among those `regex`
/// matches in fixture `build`, in order.
fn uretprobed(build: &str, regex: &str) -> Vec<String> {
    let out = logprobe()
        .arg("probes")
        .arg(fixture(build))
        .arg(regex)
        .output()
        .unwrap();
    assert!(out.status.success(), "{build}: {}", stderr(&out));
    stdout(&out)
        .lines()
        .filter_map(|l| l.strip_prefix("uretprobe "))
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect()
}

/// Under eBPF a Rust function returns through a uretprobe only where no
/// panic can unwind through its frame: `safe` (a leaf) and `twice` (which
/// only calls it) are proven so, `may_panic` is not (its panic unwinds to
/// a catch_unwind in main) and keeps its RET probes; under panic=abort
/// nothing can unwind and every function gets one. A uretprobe on
/// `may_panic` would abort the program ("failed to initiate panic"): it
/// must survive the caught panic and print the same text under both
/// backends.
#[test]
fn rust_returns_through_uretprobes_only_where_no_panic_can_unwind() {
    let funcs = r"unwind::(safe|twice|may_panic)$";
    let proven = ["unwind::safe", "unwind::twice"];
    assert_eq!(uretprobed("rust-unwind", funcs), proven);
    assert_eq!(uretprobed("rust-unwind-debug", funcs), proven);
    assert_eq!(
        uretprobed("rust-unwind-abort", funcs),
        ["unwind::safe", "unwind::twice", "unwind::may_panic"]
    );
    let calls = "> thread(T): unwind::safe(4, 2)
>> thread(T): unwind::safe => (14)
> thread(T): unwind::twice(5)
> thread(T): unwind::safe(5, 1)
>> thread(T): unwind::safe => (16)
> thread(T): unwind::safe(16, 5)
>> thread(T): unwind::safe => (53)
>> thread(T): unwind::twice => (<optimized out>)
";
    let panicked = "> thread(T): unwind::may_panic(0)\n";
    let returned = "> thread(T): unwind::may_panic(4)
>> thread(T): unwind::may_panic => (25)
";
    let expected = format!("{calls}{panicked}{returned}");
    let printed = [
        "safe 14\n",
        "twice 106\n",
        "caught true\n",
        "may_panic 25\n",
    ];
    for backend in backends() {
        check(backend, funcs, "rust-unwind", &[], &expected, &printed);
        // At opt-level 0 DWARF places `twice`'s result.
        let o0 = with_changes(&expected, &[("(<optimized out>)", "(106)")]);
        check(backend, funcs, "rust-unwind-debug", &[], &o0, &printed);
        let out = trace(backend, funcs, "rust-unwind-abort", &["no-panic"], &[]);
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        assert_eq!(lines(&out), format!("{calls}{returned}"), "{backend}");
    }
}

/// A C++ function that a caught exception unwinds through (`through`)
/// keeps its RET probes under eBPF (a uretprobe there makes the program
/// die in std::terminate), while a leaf (`leaf`) returns through a
/// uretprobe; the program survives the exception and both backends
/// print the same text.
#[test]
fn cpp_returns_through_uretprobes_only_where_no_exception_can_unwind() {
    let funcs = r"^(leaf|through)$";
    let expected = "> thread(T): through(1)
>> thread(T): through => (2)
> thread(T): through(5)
> thread(T): leaf(2, 3)
>> thread(T): leaf => (9)
";
    let printed = ["through 2\n", "caught too big\n", "leaf 9\n"];
    for build in ["cpp-unwind", "cpp-unwind-debug"] {
        assert_eq!(uretprobed(build, funcs), ["leaf"], "{build}");
    }
    for backend in backends() {
        for build in ["cpp-unwind", "cpp-unwind-debug"] {
            check(backend, funcs, build, &[], expected, &printed);
        }
    }
}
