//! docs/options.md is generated from the library's option declarations
//! (`imago options --markdown`). These tests fail when it is stale, and
//! check that the documentation covers every option the library declares,
//! each with a type and a description.

use std::path::Path;
use std::process::Command;

const REGENERATE: &str = "cargo run -p imago -- options --markdown > docs/options.md";

fn imago(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_imago"))
        .args(args)
        .env_remove("IMAGO_MODULES")
        .output()
        .expect("cannot run imago");
    assert!(
        out.status.success(),
        "imago {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("imago printed non-UTF-8")
}

fn committed_doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/options.md");
    std::fs::read_to_string(&path).unwrap_or_default()
}

#[test]
fn options_md_is_up_to_date() {
    let generated = imago(&["options", "--markdown"]);
    let committed = committed_doc();
    if generated != committed {
        let first_difference = generated
            .lines()
            .zip(committed.lines())
            .position(|(a, b)| a != b)
            .map_or(
                generated.lines().count().min(committed.lines().count()),
                |i| i,
            );
        panic!(
            "docs/options.md is stale (first difference at line {}); regenerate it with\n    {REGENERATE}",
            first_difference + 1
        );
    }
}

#[test]
fn every_declared_option_is_documented() {
    let json: serde_json::Value =
        serde_json::from_str(&imago(&["options", "--json"])).expect("options --json is not JSON");
    let options = json.as_object().expect("options --json is not an object");
    assert!(!options.is_empty(), "the library declares no option");
    let doc = committed_doc();
    let mut problems = Vec::new();
    for (name, o) in options {
        if !doc.contains(&format!("\n## `{name}`\n")) {
            problems.push(format!("`{name}` is missing from docs/options.md"));
        }
        if o["description"]
            .as_str()
            .is_none_or(|d| d.trim().is_empty())
        {
            problems.push(format!("`{name}` has no description"));
        }
        if o["type"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("`{name}` has no type"));
        }
        // Machine-independent: library files are named relative to the
        // source tree.
        let declared = o["declarations"][0].as_str().unwrap_or("");
        if !declared.starts_with("modules/") {
            problems.push(format!(
                "`{name}` is declared in `{declared}`, not under modules/"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n(regenerate docs/options.md with `{REGENERATE}`)",
        problems.join("\n")
    );
}
