//! The `text` builder: `{ text, executable ? false }` → a file with that
//! content, created read-only as the store keeps it: 0444 (0555 when
//! executable).

use super::fsutil::write_new_file;
use super::{BuildContext, BuildError, Builder, ResolvedStep};
use std::io::Write;
use std::path::Path;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    text: String,
    #[serde(default)]
    executable: bool,
}

/// Writes a string to a file.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextBuilder;

impl Builder for TextBuilder {
    fn build(
        &self,
        _ctx: &BuildContext,
        step: &ResolvedStep,
        out: &Path,
        _log: &mut dyn Write,
    ) -> Result<(), BuildError> {
        let params: Params = step.params()?;
        write_new_file(out, params.text.as_bytes(), params.executable)
    }
}
