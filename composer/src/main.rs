use std::process::ExitCode;

/// Evaluation allocates and frees many small objects; mimalloc does that
/// about a third faster than glibc's allocator (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    imago::cli::main_from_args()
}
