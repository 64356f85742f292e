//! Fuzz target `parse`: arbitrary bytes (as lossy UTF-8) are parsed; parsing
//! must not panic or overflow the stack, every error span must lie inside the
//! input, and a tree without errors must print to text that parses back to
//! the same tree (unless the input is nested so deep that the parentheses
//! the printer must add take it past the nesting limit: see `deep_input`).

#![no_main]

#[path = "../../tests/parse/support.rs"]
#[allow(dead_code)]
mod support;

use imago_lang::parser::{ParseError, parse};
use imago_lang::printer::print;
use imago_lang::source::FileId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = parse(FileId(0), &text);
    for err in &parsed.errors {
        assert!(err.span().start <= err.span().end);
        assert!(err.span().end as usize <= text.len());
    }
    if parsed.errors.is_empty() {
        let printed = print(&parsed.expr);
        let again = parse(FileId(0), &printed);
        if !again.errors.is_empty() && deep_input(&again.errors, &text) {
            return;
        }
        assert!(
            again.errors.is_empty(),
            "printed text does not parse: {:?}\n{printed}",
            again.errors
        );
        assert_eq!(
            support::normalize(&again.expr),
            support::normalize(&parsed.expr),
            "round trip changed the tree:\n{printed}"
        );
    }
});

/// Whether a reparse that failed only on the nesting limit is excused: the
/// printer adds the parentheses precedence needs (at most one pair per
/// node), and they count as nesting, so an input nested more than half the
/// limit may print to text beyond it. The input counts as that deep when
/// 300 more pairs of parentheses around it break the limit; a shallower
/// input must print to text that parses.
fn deep_input(errors: &[ParseError], text: &str) -> bool {
    if !errors.iter().all(|e| matches!(e, ParseError::TooDeep { .. })) {
        return false;
    }
    let wrapped = format!("{}{text}\n{}", "(".repeat(300), ")".repeat(300));
    parse(FileId(0), &wrapped)
        .errors
        .iter()
        .any(|e| matches!(e, ParseError::TooDeep { .. }))
}
