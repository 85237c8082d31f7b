//! The planner on the fixtures' real functions: conditions compiled into
//! the probes' filters as they are planned, and the returns of filtered
//! calls paired with them.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use logprobe::expr;
use logprobe::image::Image;
use logprobe::plan::{FrameRole, PlanOptions, Planner, ProbeKind, Reg};

#[test]
fn a_condition_becomes_the_entrys_filter_and_pairs_the_returns() {
    let image = Image::open(&fixture("values")).expect("values");
    let f = image
        .functions
        .iter()
        .position(|f| f.name == "main.ints")
        .expect("main.ints");
    let stack_hi = image.g.expect("runtime.g").stack_hi as u16;
    let condition = expr::parse("a == -8 && h >= 64").expect("parses");
    let mut planner = Planner::new(&image, PlanOptions::default()).expect("planner");
    let probes = planner
        .plan_function(f, Some(&condition), true)
        .expect("plans");
    let entry = &probes[0];
    assert_eq!(entry.kind, ProbeKind::Entry);
    assert!(entry.recipe.filter.is_some());
    let open = entry.recipe.pairing.expect("paired");
    assert_eq!(open.role, FrameRole::Open);
    assert_eq!(open.key, entry.id);
    assert_eq!(open.g, Some((Reg::R14, stack_hi)));
    assert!(probes.len() > 1);
    for ret in &probes[1..] {
        assert_eq!(ret.kind, ProbeKind::Return);
        assert!(ret.recipe.filter.is_none());
        let close = ret.recipe.pairing.expect("paired");
        assert_eq!(
            (close.role, close.key, close.g),
            (FrameRole::Close, open.key, open.g)
        );
    }

    // Without returns, only the entry; a condition nothing of which the
    // probes can check, or filters turned off, leaves the recipes alone.
    let probes = planner
        .plan_function(f, Some(&condition), false)
        .expect("plans");
    assert_eq!(probes.len(), 1);
    let floats = expr::parse("a > 1.5").expect("parses");
    for p in planner
        .plan_function(f, Some(&floats), true)
        .expect("plans")
    {
        assert!(p.recipe.filter.is_none() && p.recipe.pairing.is_none());
    }
    let off = PlanOptions {
        prefilter: false,
        ..PlanOptions::default()
    };
    let mut planner = Planner::new(&image, off).expect("planner");
    for p in planner
        .plan_function(f, Some(&condition), true)
        .expect("plans")
    {
        assert!(p.recipe.filter.is_none() && p.recipe.pairing.is_none());
    }
}

/// The return probes of a C function that leaves only through its RETs
/// name its entry, where one uretprobe can stand for all of them; not
/// those of a function that ends in a tail call (at -O2 `tail` jumps to
/// `helper`), nor those of a Rust or C++ function an unwind may pass
/// through (an unwinding panic or exception would find the uretprobe's
/// return address): at opt-level 0 `values::work` checks its additions
/// for overflow, which panics; at opt-level 2 it is a leaf
/// (plan/unwind.rs).
#[test]
fn c_returns_name_the_entry_a_uretprobe_can_stand_on() {
    for (build, func, uret) in [
        ("c-returns", "depth", true),
        ("c-returns", "sign", true),
        ("c-returns", "guarded", true),
        ("c-returns", "tail", false),
        ("c-returns-debug", "tail", true),
        ("rust-values", "values::work", true),
        ("rust-values-debug", "values::work", false),
        ("rust-unwind", "unwind::may_panic", false),
        ("rust-unwind-abort", "unwind::may_panic", true),
        ("cpp-unwind", "leaf", true),
        ("cpp-unwind", "through", false),
    ] {
        let image = Image::open(&fixture(build)).expect(build);
        let f = image
            .functions
            .iter()
            .position(|f| f.name == func)
            .expect(func);
        let low = image.functions[f].low;
        let mut planner = Planner::new(&image, PlanOptions::default()).expect("planner");
        let probes = planner.plan_function(f, None, true).expect("plans");
        let returns: Vec<_> = probes
            .iter()
            .filter(|p| p.kind == ProbeKind::Return)
            .collect();
        assert!(!returns.is_empty() || !uret, "{build} {func}: no RET");
        for r in returns {
            assert_eq!(
                r.returns_at.map(|at| at.address),
                uret.then_some(low),
                "{build} {func}"
            );
        }
        assert!(probes[0].returns_at.is_none());
    }
}
