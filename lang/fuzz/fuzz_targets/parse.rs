//! Fuzz target `parse`: arbitrary bytes (as lossy UTF-8) are parsed; parsing
//! must not panic or overflow the stack, every error span must lie inside the
//! input, and a tree without errors must print to text that parses back to
//! the same tree.

#![no_main]

#[path = "../../tests/parse/support.rs"]
#[allow(dead_code)]
mod support;

use imago_lang::parser::parse;
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
