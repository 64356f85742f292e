//! Fuzz target: evaluate arbitrary text. Evaluation must end in a value or an
//! error that renders as a diagnostic — never a panic, a hang on small input,
//! or a stack overflow.
//!
//! The nesting limit is lowered so the fuzzer's default stack is enough, and
//! values are printed strictly (which forces everything) with a size guard.

#![no_main]

use imago_lang::diag::{IntoDiagnostic, render};
use imago_lang::eval::Evaluator;
use imago_lang::hook::NoStore;
use imago_lang::io::MemoryIo;
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::rc::Rc;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let io = MemoryIo::new().with_file("/fuzz/lib.imago", "{ x = 1; f = a: a + 1; }");
    let mut ev = Evaluator::new(Rc::new(io), Rc::new(NoStore));
    ev.set_max_depth(500);
    ev.set_stack_budget(4 << 20);
    let pkgs = ev.packages_value();
    ev.with_global("pkgs", pkgs);
    let result = ev
        .eval_source("/fuzz/input.imago", text, Path::new("/fuzz"))
        .and_then(|v| ev.display(&v, true));
    if let Err(e) = result {
        let _ = render(&[e.to_diagnostic()], ev.sources(), false);
    }
});
