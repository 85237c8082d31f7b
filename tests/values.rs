//! End-to-end tests of value capture and display (issue 4): the real
//! binary traces `fixtures/go/values`, whose functions take and return every
//! kind of Go value, under every backend, in the optimized and the `-N -l`
//! build, and the lines are compared with the exact expected text.

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
    for backend in backends() {
        // values-pie: interfaces' dynamic types and funcs' names are found
        // from run-time addresses, which the load bias shifts.
        for build in ["values", "values-debug", "values-pie"] {
            let out = trace(backend, ALL, build, &[], &[]);
            assert!(out.status.success(), "{backend} {build}: {}", stderr(&out));
            let lines = trace_lines(&out).join("\n") + "\n";
            assert_eq!(mask_addresses(&lines), EXPECTED, "{backend} {build}");
        }
    }
}

#[test]
fn a_buffer_and_a_map_written_by_the_call_show_their_contents_at_the_call() {
    for backend in backends() {
        for build in ["values", "values-debug"] {
            let out = trace(backend, r"^main\.mutate$", build, &[], &[]);
            assert!(out.status.success(), "{backend} {build}: {}", stderr(&out));
            // The program itself sees what the call wrote...
            assert!(stdout(&out).contains("after! 2\n"), "{}", stdout(&out));
            // ...while the call line shows what was there when it was made.
            assert_eq!(
                trace_lines(&out),
                vec![
                    "> goroutine(1): main.mutate([]uint8 len: 6, cap: 6, [98,101,102,111,114,101], map[string]int [\"k\": 1])",
                    ">> goroutine(1): main.mutate => ()",
                ],
                "{backend} {build}"
            );
        }
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

/// Maps larger than a few buckets: 64 entries in 16 buckets beside another
/// argument, entries in overflow buckets, and a map part way through
/// growing (entries still in old buckets). The fixture checks each shape
/// with the runtime's own header and prints it.
#[test]
fn maps_are_shown_whole_across_buckets_overflow_and_growth() {
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let big = sorted((0..64).map(|i| format!("\"k{i:02}\": {i}")).collect());
    let over = sorted((0..52).map(|i| format!("{i}: {}", i * i)).collect());
    let grow = sorted((0..53).map(|i| format!("\"g{i:02}\": {i}")).collect());
    for backend in backends() {
        for build in ["values", "values-debug"] {
            let out = trace(
                backend,
                r"^main\.(bigmap|overflow|growing)$",
                build,
                &[],
                &[],
            );
            assert!(out.status.success(), "{backend} {build}: {}", stderr(&out));
            let shapes = stdout(&out);
            for shape in ["65 4 0\n", "52 3 true true\n", "53 4 true "] {
                assert!(shapes.contains(shape), "{backend} {build}: {shapes}");
            }
            let lines = trace_lines(&out);
            assert_eq!(lines.len(), 6, "{backend} {build}: {lines:#?}");
            let call = |name: &str| -> &String {
                let prefix = format!("> goroutine(1): main.{name}(map[");
                lines
                    .iter()
                    .find(|l| l.starts_with(&prefix))
                    .unwrap_or_else(|| panic!("{backend} {build}: no {name} in {lines:#?}"))
            };
            let bigmap = call("bigmap");
            assert_eq!(
                map_entries(bigmap),
                Some(big.clone()),
                "{backend} {build}: {bigmap}"
            );
            assert!(
                bigmap.ends_with("], *main.Point {X: 1, Y: 2})"),
                "{backend} {build}: {bigmap}"
            );
            let overflow = call("overflow");
            assert_eq!(
                map_entries(overflow),
                Some(over.clone()),
                "{backend} {build}: {overflow}"
            );
            let growing = call("growing");
            assert_eq!(
                map_entries(growing),
                Some(grow.clone()),
                "{backend} {build}: {growing}"
            );
        }
    }
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
    for backend in backends() {
        for build in ["values", "values-debug"] {
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
            assert!(out.status.success(), "{backend} {build}: {}", stderr(&out));
            let lines = trace_lines(&out).join("\n") + "\n";
            assert_eq!(mask_addresses(&lines), expected, "{backend} {build}");

            let out = trace(
                backend,
                r"^main\.(structs|ifaces|maps|chans)$",
                build,
                &[],
                &["--max-depth", "0"],
            );
            assert!(out.status.success(), "{backend} {build}: {}", stderr(&out));
            let lines = trace_lines(&out).join("\n") + "\n";
            assert_eq!(mask_addresses(&lines), shallow, "{backend} {build}");
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

    let image = Image::open(&fixture("values")).expect("open fixture");
    let generous = Limits {
        max_string_len: 1 << 20,
        max_array_values: 1 << 20,
        max_depth: 10,
    };
    let re =
        regex::Regex::new(r"^main\.(boxes|slices|maps|ifaces|rich|many|bigmap|overflow|growing)$")
            .expect("re");
    for limits in [Limits::default(), generous] {
        let options = PlanOptions {
            limits,
            ..Default::default()
        };
        let mut planner = Planner::new(&image, options).expect("planner");
        let funcs = image.matching(&re);
        assert_eq!(funcs.len(), 9);
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
