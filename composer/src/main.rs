use clap::Parser;
use std::process::ExitCode;

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
