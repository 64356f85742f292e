//! The pipeline's own errors: a wanted value that is not a buildable object.

use crate::store::StorePath;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("bad `-A` argument `{attr}`: {reason}")]
    BadAttr { attr: String, reason: String },
    #[error(
        "`{attr}` evaluated to \"{text}\", which is not a store object; \
         it must be a derivation-like value made with `builtins.step`, a package or a path"
    )]
    NotAnObject { attr: String, text: String },
    #[error("`{}` is not a valid object of the store {}", path.to_absolute(), store.display())]
    NotInStore { path: StorePath, store: PathBuf },
    #[error(
        "`{attr}` of {} is {}{suffix}, a path inside an object, not a system toplevel",
        file.display(),
        path.to_absolute()
    )]
    InsideAnObject {
        attr: String,
        file: PathBuf,
        path: StorePath,
        suffix: String,
    },
    #[error("the build produced no output")]
    NoOutput,
}

impl PipelineError {
    /// The stable code of this error (docs/errors.md, E07xx; an object
    /// missing from the store is E0507).
    pub fn code(&self) -> crate::codes::Code {
        use crate::codes::*;
        match self {
            PipelineError::BadAttr { .. } => BAD_ATTR,
            PipelineError::NotAnObject { .. } => NOT_AN_OBJECT,
            PipelineError::NotInStore { .. } => STORE_NOT_VALID,
            PipelineError::InsideAnObject { .. } => NOT_A_TOPLEVEL,
            PipelineError::NoOutput => NO_OUTPUT,
        }
    }
}
