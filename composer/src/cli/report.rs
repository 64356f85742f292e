//! How the command line prints an error that is not a language diagnostic
//! (the store, packages, the build, images, generations…): one diagnostic
//! with the error's stable code (`crate::codes`), in the format
//! `--error-format` asks for — `error[E0601]: message` as text, or the same
//! JSON array the language diagnostics use, with the whole message chain
//! as the message and each cause as a note.

use super::ErrorFormat;
use crate::codes::{self, Code};
use imago_lang::diag::Diagnostic;
use imago_lang::source::SourceMap;

/// The code of the outermost error of a known type in `error`'s chain, or
/// [`codes::OTHER`].
pub fn code_of(error: &anyhow::Error) -> Code {
    error.chain().find_map(known_code).unwrap_or(codes::OTHER)
}

/// The code of `error` when it is of one of the composer's error types.
fn known_code(error: &(dyn std::error::Error + 'static)) -> Option<Code> {
    macro_rules! try_types {
        ($($ty:ty),* $(,)?) => {
            $(if let Some(e) = error.downcast_ref::<$ty>() {
                return Some(e.code());
            })*
        };
    }
    use crate::{
        boot, builders, cache, debian, generations, graph, image, pipeline, remote, settings, store,
    };
    try_types!(
        pipeline::PipelineError,
        store::StoreError,
        store::StorePathError,
        store::digest::DigestParseError,
        store::archive::ArchiveError,
        settings::SettingsError,
        debian::lock::LockError,
        debian::control::ControlError,
        debian::fetch::FetchError,
        debian::apt::AptError,
        debian::deb::ContainerError,
        debian::unpack::UnpackError,
        graph::StepError,
        graph::GraphError,
        graph::ScheduleError,
        graph::StepFailure,
        graph::StepFailureCause,
        builders::BuildError,
        image::ImageError,
        boot::bootspec::BootSpecError,
        boot::cpio::CpioError,
        boot::cpio::WriteError,
        boot::kmod::KmodError,
        boot::kmod::index::IndexError,
        boot::kvm::AccelError,
        boot::run::RunError,
        generations::GenerationsError,
        cache::CacheError,
        remote::DeployError,
    );
    None
}

/// `error` as one diagnostic: the chain joined as `{:#}` prints it, and
/// each cause after the first as a note.
pub fn diagnostic(error: &anyhow::Error) -> Diagnostic {
    let mut diag = Diagnostic::error(code_of(error), format!("{error:#}"));
    for cause in error.chain().skip(1) {
        diag = diag.with_note(format!("caused by: {cause}"));
    }
    diag
}

/// Prints `error` on stderr in `format`.
pub fn print_error(error: &anyhow::Error, format: ErrorFormat) {
    print_diagnostic(&diagnostic(error), format);
}

/// Prints a diagnostic without a place on stderr in `format`: as text
/// `error[CODE]: message` (notes are for JSON readers; the message already
/// holds them), or a JSON array of one.
pub fn print_diagnostic(diag: &Diagnostic, format: ErrorFormat) {
    match format {
        ErrorFormat::Human => eprintln!("error[{}]: {}", diag.code, diag.message),
        ErrorFormat::Json => {
            let style = crate::pipeline::DiagnosticStyle::Json;
            match style.render(std::slice::from_ref(diag), &SourceMap::new()) {
                Ok(json) => eprint!("{json}"),
                // Encoding a message cannot fail; say it plainly if it does.
                Err(e) => eprintln!("error[{}]: {} ({e:#})", diag.code, diag.message),
            }
        }
    }
}
