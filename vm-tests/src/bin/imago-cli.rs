//! The `imago` command line, built into this crate so that VM tests can run
//! the command a user runs (`imago deploy` as an ordinary user, say) as a
//! separate process: an integration test sees only its own package's
//! binaries (`CARGO_BIN_EXE_imago-cli`), and `cargo test -p imago-vm-tests`
//! does not build the `imago` package's binary. Same entry point, same code
//! (without `imago`'s allocator, which changes speed, not behaviour).

fn main() -> std::process::ExitCode {
    imago::cli::main_from_args()
}
