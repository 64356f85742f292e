//! Every subcommand has help, and `imago --help` lists it. The list of
//! subcommands comes from clap (`Cli::command()`), not from this file, so a
//! new verb (or a new verb of `imago store`, say) is covered the moment it
//! exists.

use clap::CommandFactory;
use imago::cli::Cli;

use crate::support::cli::imago;

/// The names of the visible subcommands of `command`.
fn subcommands(command: &clap::Command) -> Vec<String> {
    command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .map(|sub| sub.get_name().to_owned())
        .collect()
}

/// Checks `imago <path> --help` and the subcommands it lists, recursively;
/// returns how many commands were checked.
fn check_help(path: &[String], command: &clap::Command) -> usize {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let out = imago(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let shown = format!("imago {}", path.join(" "));
    assert!(
        out.status.success(),
        "`{shown} --help` exited with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("Usage: {}", shown.trim_end())),
        "`{shown} --help` shows no usage line:\n{stdout}"
    );
    let mut checked = 1;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        if name == "help" {
            continue;
        }
        let listed = stdout
            .lines()
            .any(|line| line.split_whitespace().next() == Some(name));
        assert!(
            listed,
            "`{shown} --help` does not list its subcommand `{name}`:\n{stdout}"
        );
        let mut sub_path = path.to_vec();
        sub_path.push(name.to_owned());
        checked += check_help(&sub_path, sub);
    }
    checked
}

#[test]
fn every_subcommand_is_listed_and_has_help() {
    let cli = Cli::command();
    let verbs = subcommands(&cli);
    for expected in ["eval", "build", "run", "image", "store", "deploy"] {
        assert!(
            verbs.iter().any(|v| v == expected),
            "clap lists no `{expected}`: {verbs:?}"
        );
    }
    let checked = check_help(&[], &cli);
    assert!(
        checked > verbs.len(),
        "only {checked} commands checked for {} verbs",
        verbs.len()
    );
}

#[test]
fn the_command_definition_is_consistent() {
    // clap's own checks (duplicate names, conflicting flags, ...).
    Cli::command().debug_assert();
}
