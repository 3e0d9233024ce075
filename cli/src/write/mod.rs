//! Writers of quantized models: GGUF, then the safetensors checkpoint formats (one folder writer,
//! `checkpoint`, and a packer per format).
pub mod awq;
pub mod checkpoint;
pub mod compressed;
pub mod compressed_fp8;
pub mod gguf;
pub mod gptq;
pub mod safetensors;

use std::path::Path;

use anyhow::{anyhow, Context, Result};

/// A temporary folder beside `out`, named after it: on the same file system, so that
/// [`finish_folder`] can rename it into place in one step, and the output appears only when complete.
pub fn folder_beside(out: &Path) -> Result<tempfile::TempDir> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(&format!(
            ".{}.",
            out.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ))
        .tempdir_in(parent)
        .with_context(|| format!("{}: cannot create a temporary folder", parent.display()))
}

/// Renames a finished temporary folder to `out` (an empty folder already there is replaced; the
/// callers refuse a non-empty one before any work); on failure the temporary folder is removed.
pub fn finish_folder(tmp: tempfile::TempDir, out: &Path) -> Result<()> {
    // A temporary folder is created 0700; a model folder is read by others (servers, containers).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    if out.exists() {
        std::fs::remove_dir(out).with_context(|| format!("{}: cannot replace", out.display()))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&kept);
        anyhow!(
            "{}: cannot rename the finished folder into place: {e}",
            out.display()
        )
    })
}
