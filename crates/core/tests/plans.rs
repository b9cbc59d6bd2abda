//! Integration tests of the plan language: the sketch plan, the corpus of invalid plans with their
//! diagnostics (snapshots), the content hash, hostile input and arbitrary input.

use proptest::prelude::*;
use slipway_core::{Code, load};

const SKETCH: &str = include_str!("../../../examples/shop.slipway.yaml");

fn render_all(name: &str, bytes: &[u8]) -> String {
    match load(name, bytes) {
        Ok(p) => format!("valid, hash {}, {} warning(s)", p.hash, p.warnings.len()),
        Err(e) => e
            .diagnostics
            .iter()
            .map(|d| d.render(&e.source, false))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn codes(text: &str) -> Vec<Code> {
    match load("plan.yaml", text.as_bytes()) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.code)
            .collect(),
    }
}

#[test]
fn the_sketch_plan_is_valid() {
    let plan = load("shop.slipway.yaml", SKETCH.as_bytes()).unwrap_or_else(|e| {
        panic!(
            "{}",
            e.diagnostics
                .iter()
                .map(|d| d.render(&e.source, false))
                .collect::<String>()
        )
    });
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let p = &plan.plan;
    assert_eq!(p.release.name.value, "shop");
    assert_eq!(p.steps.len(), 3);
    assert_eq!(p.environments["production"].targets.len(), 4);
    assert_eq!(p.tests.len(), 3);
    assert_eq!(plan.hash.len(), 64);
}

#[test]
fn invalid_plans_report_every_problem_with_its_place() {
    insta::glob!("invalid/*.yaml", |path| {
        let bytes = std::fs::read(path).expect("read corpus file");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("plan.yaml");
        let rendered = render_all(name, &bytes);
        assert!(!rendered.starts_with("valid"), "{name} should be invalid");
        insta::assert_snapshot!(rendered);
    });
}

#[test]
fn several_problems_are_all_reported_in_one_run() {
    let found = codes(include_str!("invalid/unknown_keys.yaml"));
    assert_eq!(
        found.iter().filter(|c| **c == Code::UnknownKey).count(),
        4,
        "{found:?}"
    );
    let found = codes(include_str!("invalid/cycle.yaml"));
    assert_eq!(found, vec![Code::DependencyCycle, Code::DependencyCycle]);
}

#[test]
fn a_cycle_names_every_step_on_it() {
    let err = load("cycle.yaml", include_bytes!("invalid/cycle.yaml")).expect_err("cycle");
    let first = &err.diagnostics[0];
    assert_eq!(
        first.message,
        "dependency cycle: `a` needs `c` needs `b` needs `a`"
    );
    assert_eq!(first.related.len(), 2);
}

#[test]
fn diagnostics_as_data_carry_line_and_column() {
    let err = load(
        "unknown_keys.yaml",
        include_bytes!("invalid/unknown_keys.yaml"),
    )
    .expect_err("invalid");
    let data: Vec<_> = err
        .diagnostics
        .iter()
        .map(|d| d.to_data(&err.source))
        .collect();
    let json = serde_json::to_value(&data).expect("json");
    insta::assert_json_snapshot!(json);
}

#[test]
fn hash_ignores_formatting_comments_and_key_order() {
    let a = "slipway: 1\nrelease: { name: shop, version: 1.0.0 }\nenvironments:\n  s:\n    targets:\n      w: { host: local }\nsteps:\n  - { id: x, run: ./x }\n";
    let b = "# a comment\nsteps:\n  - run: ./x\n    id: x\nenvironments:\n  s:\n    targets:\n      w:\n        host: local\nrelease:\n  version: 1.0.0   # same\n  name: shop\nslipway: 1\n";
    let c = a.replace("./x", "./y");
    let ha = load("a", a.as_bytes()).expect("a").hash;
    let hb = load("b", b.as_bytes()).expect("b").hash;
    let hc = load("c", c.as_bytes()).expect("c").hash;
    assert_eq!(ha, hb);
    assert_ne!(ha, hc);
}

#[test]
fn hostile_input_is_refused_quickly_and_clearly() {
    let big = vec![b'#'; slipway_core::yaml::MAX_FILE_BYTES + 1];
    assert_eq!(codes_of(&big), vec![Code::FileTooLarge]);
    assert_eq!(codes_of(b"slipway: 1\nrelease: \0"), vec![Code::NulByte]);
    assert_eq!(
        codes_of(b"slipway: 1\nrelease: \xc3\x28"),
        vec![Code::InvalidUtf8]
    );
    assert_eq!(
        codes_of(include_bytes!("invalid/alias_bomb.yaml")),
        vec![Code::TooManyNodes]
    );
    assert_eq!(
        codes_of(include_bytes!("invalid/deep_nesting.yaml")),
        vec![Code::TooDeep]
    );
    let deep_block: String = (0..5000)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect();
    assert_eq!(codes_of(deep_block.as_bytes()), vec![Code::TooDeep]);
}

fn codes_of(bytes: &[u8]) -> Vec<Code> {
    match load("plan.yaml", bytes) {
        Ok(_) => Vec::new(),
        Err(e) => e.diagnostics.iter().map(|d| d.code).collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = load("fuzz.yaml", &bytes);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,512}") {
        let _ = load("fuzz.yaml", text.as_bytes());
    }

    /// Mutations of a valid plan reach deep into the decoder and validator.
    #[test]
    fn mutated_sketch_never_panics(cuts in proptest::collection::vec((0usize..SKETCH.len(), 0usize..40, "[ -~\n]{0,6}"), 1..6)) {
        let mut text = SKETCH.to_string();
        for (at, len, insert) in cuts {
            let mut start = at.min(text.len());
            while !text.is_char_boundary(start) { start -= 1; }
            let mut end = (start + len).min(text.len());
            while !text.is_char_boundary(end) { end += 1; }
            text.replace_range(start..end, &insert);
        }
        let _ = load("mutated.yaml", text.as_bytes());
    }
}
