use clap::Parser;
use std::process::ExitCode;

/// Evaluation allocates and frees many small objects; mimalloc does that
/// about a third faster than glibc's allocator (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match imago::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            // Printing clap's message can only fail on a closed stdout/stderr.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    imago::cli::main(cli)
}
