//! End-to-end tests of value capture and display (issues 4 and 11): the
//! real binary traces `fixtures/go/values`, whose functions take and return
//! every kind of Go value, built by every Go toolchain (`toolchains()`),
//! under every backend, in the optimized and the `-N -l` build, and the
//! lines are compared with the exact expected text.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

const ALL: &str = r"^main\.(ints|floats|chars|text|slices|structs|cycle|ifaces|maps|chans|funcs|named_|stack|many|wide|boxes|mutate)$";

/// Every line of a run with the default limits.
const EXPECTED: &str = r#"> goroutine(1): main.ints(-8, -16, -32, -64, 8, 16, 32, 64, 100)
>> goroutine(1): main.ints => (100)
> goroutine(1): main.floats(1.5, -2.25, (1 + -2i), (0.5 + 3i))
>> goroutine(1): main.floats => ((3 + -1.25i))
> goroutine(1): main.chars(65, 233, true)
>> goroutine(1): main.chars => (298)
> goroutine(1): main.text("hello", "tab\there \"q\" \x01 é\n", []uint8 len: 5, cap: 5, [98,121,116,101,115])
>> goroutine(1): main.text => ("hellotab\there \"q\" \x01 é\nbytes")
> goroutine(1): main.slices([]int len: 3, cap: 4, [1,2,3], [][]string len: 3, cap: 3, [["a","b"],[],["c"]], [3]int [7,8,9], []int len: 0, cap: 0, nil)
>> goroutine(1): main.slices => ([]int len: 4, cap: 4, [1,2,3,7])
> goroutine(1): main.structs(main.Point {X: 1, Y: 2}, main.Outer {Inner: main.Inner {A: 1, b: "in"}, Name: "out", p: *main.Point {X: 5, Y: 6}, tags: []string len: 2, cap: 2, ["x","y"]}, *main.Point {X: 5, Y: 6}, *main.Point nil)
>> goroutine(1): main.structs => (*main.Point {X: 5, Y: 6})
> goroutine(1): main.cycle(*main.Node {V: 1, Next: *main.Node {V: 2, Next: (*main.Node)(0xADDR)}})
>> goroutine(1): main.cycle => (1)
> goroutine(1): main.ifaces(error(*errors.errorString) *{s: "boom"}, interface {}(int) 42, fmt.Stringer(main.named) {s: "nm"}, error nil)
>> goroutine(1): main.ifaces => (error(*fmt.wrapError) *{msg: "wrapped: boom", err: error(*errors.errorString) *{s: "boom"}})
> goroutine(1): main.maps(map[string]int ["a": 1, "b": 2], map[int]bool nil)
>> goroutine(1): main.maps => (map[int]string [1: "one", 2: "two"])
> goroutine(1): main.chans(chan int 1/10, chan string nil)
>> goroutine(1): main.chans => (chan int 1/10)
> goroutine(1): main.funcs(main.double, unsafe.Pointer(0xADDR), nil)
>> goroutine(1): main.funcs => (2)
> goroutine(1): main.named_(main.Celsius(21.5), time.Duration(1500000000))
>> goroutine(1): main.named_ => (main.Celsius(23))
> goroutine(1): main.stack(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, main.Big {A: 1, B: 2, C: 3, D: 4, E: 5, F: 6, G: 7, H: 8, I: 9, J: 10})
>> goroutine(1): main.stack => (55, main.Big {A: 1, B: 2, C: 3, D: 4, E: 5, F: 6, G: 7, H: 8, I: 9, J: 11})
> goroutine(1): main.many([]int len: 100, cap: 100, [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,...+36 more], "0123456789012345678901234567890123456789012345678901234567890123"...+36 more)
>> goroutine(1): main.many => (200)
> goroutine(1): main.wide(1, 2, 3, 4, 5, 6, 7, 8, 9, "ten", *main.Point {X: 7, Y: 8})
>> goroutine(1): main.wide => (1, 2, 3, 4, 5, 6, 7, 8, 9, "ten!", *main.Point {X: 7, Y: 8})
> goroutine(1): main.boxes([]interface {} len: 5, cap: 5, [1,"two",3.5,nil,*5], []error len: 2, cap: 2, [*errors.errorString {s: "a"},nil], interface {}(main.Point) {X: 9, Y: 10}, **5, main.main.func1)
>> goroutine(1): main.boxes => (10)
> goroutine(1): main.mutate([]uint8 len: 6, cap: 6, [98,101,102,111,114,101], map[string]int ["k": 1])
>> goroutine(1): main.mutate => ()
"#;

#[test]
fn every_kind_is_shown_in_full_in_go_notation() {
    for case in cases(&["values", "values-debug"]) {
        let out = trace(case.backend, ALL, &case.path(), &[], &[]);
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        let lines = trace_lines(&out).join("\n") + "\n";
        assert_eq!(mask_addresses(&lines), EXPECTED, "{case}");
    }
    // Position-independent: interfaces' dynamic types and funcs' names are
    // found from run-time addresses, which the load bias shifts.
    for backend in backends() {
        let out = trace(backend, ALL, "values-pie", &[], &[]);
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        let lines = trace_lines(&out).join("\n") + "\n";
        assert_eq!(mask_addresses(&lines), EXPECTED, "{backend} values-pie");
    }
}

#[test]
fn a_buffer_and_a_map_written_by_the_call_show_their_contents_at_the_call() {
    for case in cases(&["values", "values-debug"]) {
        let out = trace(case.backend, r"^main\.mutate$", &case.path(), &[], &[]);
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        // The program itself sees what the call wrote...
        assert!(stdout(&out).contains("after! 2\n"), "{}", stdout(&out));
        // ...while the call line shows what was there when it was made.
        assert_eq!(
            trace_lines(&out),
            vec![
                "> goroutine(1): main.mutate([]uint8 len: 6, cap: 6, [98,101,102,111,114,101], map[string]int [\"k\": 1])",
                ">> goroutine(1): main.mutate => ()",
            ],
            "{case}"
        );
    }
}

/// The entries of the first map shown in `line`, sorted: a map's order
/// depends on its random hash seed. `None` if the map has `...` in it.
fn map_entries(line: &str) -> Option<Vec<String>> {
    let open = line.find("map[")?;
    let start = open + line[open..].find(" [")? + 2;
    let end = start + line[start..].find(']')?;
    let body = &line[start..end];
    if body.contains("...") {
        return None;
    }
    let mut entries: Vec<String> = body.split(", ").map(str::to_string).collect();
    entries.sort();
    Some(entries)
}

/// The call line of `name` among `lines`.
fn call<'a>(lines: &'a [String], name: &str, case: &Case) -> &'a String {
    let prefix = format!("> goroutine(1): main.{name}(map[");
    lines
        .iter()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{case}: no {name} in {lines:#?}"))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Maps larger than a few buckets or groups: 64 entries beside another
/// argument (16 buckets, or a table of 16 groups), 52 entries (in
/// overflow buckets) and 53 (a bucket map part way through growing,
/// entries still in old buckets not evacuated yet). The fixture checks
/// each shape with the runtime's own header and prints it.
#[test]
fn maps_are_shown_whole_across_buckets_overflow_and_growth() {
    let big = sorted((0..64).map(|i| format!("\"k{i:02}\": {i}")).collect());
    let over = sorted((0..52).map(|i| format!("{i}: {}", i * i)).collect());
    let grow = sorted((0..53).map(|i| format!("\"g{i:02}\": {i}")).collect());
    for case in cases(&["values", "values-debug"]) {
        let regex = r"^main\.(bigmap|overflow|growing)$";
        let out = trace(case.backend, regex, &case.path(), &[], &[]);
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        let shapes = stdout(&out);
        // Buckets: B and overflow buckets; being evacuated. Swiss tables:
        // one directory entry, one table, of 16 groups for 64 entries.
        // Go 1.21 grows past 6 entries a bucket, not 6.5: 52 entries are
        // in 16 buckets (some in overflow ones, the growth from 8 most
        // often not finished, as it may be at the 53rd).
        let expected = match (case.toolchain.swiss(), case.toolchain.minor) {
            (false, 21) => ["65 4 0\n", "52 4 true ", "53 4 "],
            (false, _) => ["65 4 0\n", "52 3 true true\n", "53 4 true "],
            (true, _) => ["65 1 1 16\n", "52 1 1\n", "53 1 1\n"],
        };
        for shape in expected {
            assert!(shapes.contains(shape), "{case}: {shapes}");
        }
        let lines = trace_lines(&out);
        assert_eq!(lines.len(), 6, "{case}: {lines:#?}");
        let bigmap = call(&lines, "bigmap", &case);
        assert_eq!(map_entries(bigmap), Some(big.clone()), "{case}: {bigmap}");
        assert!(
            bigmap.ends_with("], *main.Point {X: 1, Y: 2})"),
            "{case}: {bigmap}"
        );
        let overflow = call(&lines, "overflow", &case);
        assert_eq!(
            map_entries(overflow),
            Some(over.clone()),
            "{case}: {overflow}"
        );
        let growing = call(&lines, "growing", &case);
        assert_eq!(
            map_entries(growing),
            Some(grow.clone()),
            "{case}: {growing}"
        );
    }
}

/// Swiss tables (Go 1.24 and later): a small map is one group with an
/// emptied slot; a table with deleted slots (tombstones) shows only its
/// live entries; a directory of four entries naming three tables shows
/// each table once, whole when the limits allow, and otherwise a part of
/// it and how many entries are left.
#[test]
fn swiss_tables_small_maps_tombstones_and_directories_are_shown_exactly() {
    let tomb = sorted(
        (0..90)
            .filter(|i| i % 3 != 0)
            .map(|i| format!("{i}: {}", i * i))
            .collect(),
    );
    for case in cases(&["values", "values-debug"]) {
        if !case.toolchain.swiss() {
            continue;
        }
        let regex = r"^main\.(small|tombstones|directory)$";
        let out = trace(case.backend, regex, &case.path(), &[], &[]);
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("small 5 0\n"), "{case}: {text}");
        assert!(text.contains("tombstones 60 1 true\n"), "{case}: {text}");
        let lines = trace_lines(&out);
        assert_eq!(
            call(&lines, "small", &case),
            "> goroutine(1): main.small(map[string]int [\"a\": 1, \"b\": 2, \"d\": 4, \"e\": 5, \"f\": 6])",
            "{case}"
        );
        let t = call(&lines, "tombstones", &case);
        assert_eq!(map_entries(t), Some(tomb.clone()), "{case}: {t}");
        // The directory's map is far past the element limit: 64 entries,
        // each one of the map's own (key % 100), and the rest counted.
        let n = directory_len(&text, &case);
        let d = call(&lines, "directory", &case);
        let suffix = format!(", ...+{} more])", n - 64);
        assert!(d.ends_with(&suffix), "{case}: {d}");
        let shown = directory_entries(d);
        assert_eq!(shown.len(), 64, "{case}: {d}");

        // With room for all of it: every entry, each once.
        let extra = ["--max-array-values", "3000"];
        let out = trace(
            case.backend,
            r"^main\.directory$",
            &case.path(),
            &[],
            &extra,
        );
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        let (lines, n) = (trace_lines(&out), directory_len(&stdout(&out), &case));
        let d = call(&lines, "directory", &case);
        let all = directory_entries(d);
        assert_eq!(all.len(), n, "{case}: {d}");
        assert_eq!(
            all.iter().collect::<std::collections::HashSet<_>>().len(),
            n
        );
        assert!(all.iter().all(|&k| (k as usize) < n), "{case}: {d}");
    }
}

/// The length of the map the fixture made for `directory` (a new one, of
/// a size depending on its hash seed, each run), from the shape it prints.
fn directory_len(text: &str, case: &Case) -> usize {
    let shape = regex::Regex::new(r"directory (\d+) 4 3\n").expect("regex");
    shape
        .captures(text)
        .unwrap_or_else(|| panic!("{case}: {text}"))[1]
        .parse()
        .expect("count")
}

/// The keys of `directory`'s `map[int32]int8` in `line`, each checked to
/// hold its own value (the fixture stores `key % 100`).
fn directory_entries(line: &str) -> Vec<i64> {
    let open = line.find(" [").expect("a map") + 2;
    let body = &line[open..line.rfind(']').expect("a map")];
    body.split(", ")
        .filter(|e| !e.starts_with("..."))
        .map(|e| {
            let (k, v) = e
                .split_once(": ")
                .unwrap_or_else(|| panic!("{e} in {line}"));
            let (k, v): (i64, i64) = (k.parse().expect("key"), v.parse().expect("value"));
            assert_eq!(v, k % 100, "{e}");
            k
        })
        .collect()
}

#[test]
fn limits_cut_strings_elements_and_depth() {
    let expected = r#"> goroutine(1): main.text("hell"...+1 more, "tab\t"...+14 more, []uint8 len: 5, cap: 5, [98,...+4 more])
>> goroutine(1): main.text => ("hell"...+24 more)
> goroutine(1): main.slices([]int len: 3, cap: 4, [1,...+2 more], [][]string len: 3, cap: 3, [[...],...+2 more], [3]int [7,...+2 more], []int len: 0, cap: 0, nil)
>> goroutine(1): main.slices => ([]int len: 4, cap: 4, [1,...+3 more])
> goroutine(1): main.cycle(*main.Node {V: 1, Next: (*main.Node)(0xADDR)})
>> goroutine(1): main.cycle => (1)
> goroutine(1): main.ifaces(error(*errors.errorString) *{s: ...}, interface {}(int) 42, fmt.Stringer(main.named) {s: ...}, error nil)
>> goroutine(1): main.ifaces => (error(*fmt.wrapError) *{msg: ..., err: error(?) ...})
> goroutine(1): main.maps(map[string]int ["a": 1, ...+1 more], map[int]bool nil)
>> goroutine(1): main.maps => (map[int]string [1: "one", ...+1 more])
> goroutine(1): main.many([]int len: 100, cap: 100, [0,...+99 more], "0123"...+96 more)
>> goroutine(1): main.many => (200)
"#;
    let shallow = r#"> goroutine(1): main.structs(main.Point {X: 1, Y: 2}, main.Outer {Inner: main.Inner {A: 1, b: "in"}, Name: "out", p: (*main.Point)(0xADDR), tags: []string len: 2, cap: 2, [...]}, (*main.Point)(0xADDR), *main.Point nil)
>> goroutine(1): main.structs => ((*main.Point)(0xADDR))
> goroutine(1): main.ifaces(error(*errors.errorString) (*errors.errorString)(0xADDR), interface {}(int) ..., fmt.Stringer(main.named) ..., error nil)
>> goroutine(1): main.ifaces => (error(*fmt.wrapError) (*fmt.wrapError)(0xADDR))
> goroutine(1): main.maps(map[string]int [...], map[int]bool nil)
>> goroutine(1): main.maps => (map[int]string [...])
> goroutine(1): main.chans((chan int)(0xADDR), chan string nil)
>> goroutine(1): main.chans => ((chan int)(0xADDR))
"#;
    for case in cases(&["values", "values-debug"]) {
        let (backend, build) = (case.backend, &case.path());
        {
            let out = trace(
                backend,
                r"^main\.(text|slices|cycle|ifaces|maps|many)$",
                build,
                &[],
                &[
                    "--max-string-len",
                    "4",
                    "--max-array-values",
                    "1",
                    "--max-depth",
                    "1",
                ],
            );
            assert!(out.status.success(), "{case}: {}", stderr(&out));
            let lines = trace_lines(&out).join("\n") + "\n";
            assert_eq!(mask_addresses(&lines), expected, "{case}");

            let out = trace(
                backend,
                r"^main\.(structs|ifaces|maps|chans)$",
                build,
                &[],
                &["--max-depth", "0"],
            );
            assert!(out.status.success(), "{case}: {}", stderr(&out));
            let lines = trace_lines(&out).join("\n") + "\n";
            assert_eq!(mask_addresses(&lines), shallow, "{case}");
        }
    }
}

#[test]
fn a_string_cut_inside_a_rune_shows_the_byte_like_strconv_quote() {
    for backend in backends() {
        for build in ["values", "values-debug"] {
            let out = trace(
                backend,
                r"^main\.text$",
                build,
                &[],
                &["--max-string-len", "16"],
            );
            assert!(out.status.success(), "{backend} {build}: {}", stderr(&out));
            assert_eq!(
                trace_lines(&out)[0],
                r#"> goroutine(1): main.text("hello", "tab\there \"q\" \x01 \xc3"...+2 more, []uint8 len: 5, cap: 5, [98,121,116,101,115])"#,
                "{backend} {build}"
            );
        }
    }
}

#[test]
fn json_events_carry_typed_value_trees() {
    for backend in backends() {
        for build in ["values", "values-debug"] {
            let out = trace(backend, r"^main\.(cycle|named_)$", build, &[], &["--json"]);
            assert!(out.status.success(), "{backend} {build}: {}", stderr(&out));
            let events: Vec<serde_json::Value> = stdout(&out)
                .lines()
                .filter(|l| l.starts_with('{'))
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
            assert_eq!(events.len(), 4, "{backend} {build}: {events:?}");
            let call = &events[0];
            assert_eq!(call["kind"], "call");
            assert_eq!(call["function"], "main.cycle");
            assert_eq!(call["goroutine"], 1);
            assert!(call["time_ns"].as_u64().is_some_and(|t| t > 0), "{call}");
            // The cycle: the inner pointer leads back to the outer node and
            // is shown by address, which is the outer pointer's.
            let n = &call["values"][0]["value"];
            assert_eq!(n["kind"], "ref", "{n}");
            assert_eq!(n["type"], "*main.Node");
            let fields = &n["target"]["fields"];
            assert_eq!(fields[0]["name"], "V");
            assert_eq!(
                fields[0]["value"],
                serde_json::json!({"kind": "int", "value": 1})
            );
            let back = &fields[1]["value"]["target"]["fields"][1]["value"];
            assert_eq!(back["kind"], "pointer", "{back}");
            assert_eq!(back["address"], n["address"], "{n}");

            assert_eq!(events[1]["kind"], "return");
            let named = &events[2]["values"];
            assert_eq!(named[0]["name"], "c");
            let celsius = serde_json::json!({"kind": "named", "type": "main.Celsius", "value": {"kind": "float", "value": 21.5, "bits": 64}});
            assert_eq!(named[0]["value"], celsius);
            assert_eq!(named[1]["value"]["type"], "time.Duration");
            assert_eq!(named[1]["value"]["value"]["value"], 1_500_000_000i64);
        }
    }
}

/// What every backend relies on: a recipe, however large the values, stays
/// within the published budgets, reads with offsets it can address, and
/// every value still gets its share (the eBPF executor stages a hit in one
/// buffer of `MAX_RECIPE_BYTES`).
#[test]
fn recipes_stay_within_the_budgets_backends_rely_on() {
    use logprobe::image::Image;
    use logprobe::plan::{
        Capture, Len, Limits, PlanOptions, Planner, MAX_CAPTURES, MAX_READ, MAX_RECIPE_BYTES,
    };

    let generous = Limits {
        max_string_len: 1 << 20,
        max_array_values: 1 << 20,
        max_depth: 10,
    };
    let re = regex::Regex::new(
        r"^main\.(boxes|slices|maps|ifaces|rich|many|bigmap|overflow|growing|small|tombstones|directory)$",
    )
    .expect("re");
    for (tc, limits) in toolchains()
        .into_iter()
        .flat_map(|tc| [(tc.clone(), Limits::default()), (tc, generous)])
    {
        let image = Image::open(&tc.fixture("values")).expect("open fixture");
        let options = PlanOptions {
            limits,
            ..Default::default()
        };
        let mut planner = Planner::new(&image, options).expect("planner");
        let funcs = image.matching(&re);
        // Swiss tables have three cases more.
        assert_eq!(funcs.len(), if tc.swiss() { 12 } else { 9 }, "{}", tc.name);
        for f in funcs {
            for probe in planner.plan_function(f, None, true).expect("plan") {
                let r = &probe.recipe;
                let name = &image.functions[f].name;
                assert!(
                    r.captures.len() <= MAX_CAPTURES,
                    "{name}: {} steps",
                    r.captures.len()
                );
                let bytes: u64 = r.captures.iter().map(|c| c.max_len() as u64).sum();
                // What each recipe costs, for `--nocapture` readers.
                eprintln!(
                    "{name} {:?} {limits:?}: {} steps, {bytes} bytes",
                    probe.kind,
                    r.captures.len()
                );
                assert!(bytes <= MAX_RECIPE_BYTES as u64, "{name}: {bytes} bytes");
                for (i, c) in r.captures.iter().enumerate() {
                    assert!(c.max_len() <= MAX_READ.max(4096), "{name}: step {i} {c:?}");
                    if let Capture::Deref { base, len, .. } = c {
                        assert!((*base as usize) < i, "{name}: step {i} reads a later step");
                        if let Len::Counted { capture, .. } = len {
                            assert!((*capture as usize) < i, "{name}: step {i}");
                        }
                    }
                }
                // Every argument that points somewhere got something followed.
                if probe.kind == logprobe::plan::ProbeKind::Entry && name == "main.boxes" {
                    for v in &r.values[..4] {
                        assert!(!v.derefs.is_empty(), "{name}: {} starved", v.name);
                    }
                }
            }
        }
    }
}

/// Generic code (`fixtures/go/generics`): each shape instantiation is
/// traced under its own name, as Delve names it (the symbol's, GC shapes
/// included: `main.pair[go.shape.string,go.shape.int]`); the dictionary
/// the compiler passes it is not shown (and, before Go 1.27, not in DWARF
/// at all, yet it takes the first argument register); values of type
/// parameters are shown with their type arguments, read from that
/// dictionary at the call (so `sum` of `[]main.MyInt` and of `[]int`,
/// one instantiation, show their own types), results too.
#[test]
fn generic_functions_show_type_arguments_not_shapes_or_dictionaries() {
    const EXPECTED: &str = r#"> goroutine(1): main.pair[go.shape.string,go.shape.int]("a", 1)
>> goroutine(1): main.pair[go.shape.string,go.shape.int] => (main.Pair[string,int] {Key: "a", Val: 1})
> goroutine(1): main.pair[go.shape.int,go.shape.string](2, "b")
>> goroutine(1): main.pair[go.shape.int,go.shape.string] => (main.Pair[int,string] {Key: 2, Val: "b"})
> goroutine(1): main.(*List[go.shape.string]).Push(*main.List[string] {items: []string len: 0, cap: 0, nil}, "x")
>> goroutine(1): main.(*List[go.shape.string]).Push => (1)
> goroutine(1): main.(*List[go.shape.string]).Push(*main.List[string] {items: []string len: 1, cap: 1, ["x"]}, "y")
>> goroutine(1): main.(*List[go.shape.string]).Push => (2)
> goroutine(1): main.sum[go.shape.int]([]int len: 3, cap: 3, [1,2,3])
>> goroutine(1): main.sum[go.shape.int] => (6)
> goroutine(1): main.sum[go.shape.int]([]main.MyInt len: 2, cap: 2, [4,5])
>> goroutine(1): main.sum[go.shape.int] => (main.MyInt(9))
> goroutine(1): main.sum[go.shape.float64]([]float64 len: 2, cap: 2, [0.5,0.25])
>> goroutine(1): main.sum[go.shape.float64] => (0.75)
"#;
    // Go 1.18 and 1.19 number their shapes (`go.shape.int_0`).
    let numbered = regex::Regex::new(r"(go\.shape\.[a-z0-9]+)_\d+").expect("regex");
    for case in cases(&["generics", "generics-debug"]) {
        let out = trace(
            case.backend,
            r"^main\.(pair|sum|\(\*List)",
            &case.path(),
            &[],
            &[],
        );
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        let lines = trace_lines(&out).join("\n") + "\n";
        assert_eq!(numbered.replace_all(&lines, "$1"), EXPECTED, "{case}");
    }
}
