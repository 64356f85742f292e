//! The `text` builder: `{ text, executable ? false }` → a file with that
//! content, mode 0644 (0755 when executable).

use super::fsutil::set_mode;
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
        std::fs::write(out, params.text.as_bytes())
            .map_err(BuildError::io(format!("writing `{}`", out.display())))?;
        set_mode(out, if params.executable { 0o755 } else { 0o644 })
    }
}
