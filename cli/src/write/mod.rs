//! Writers of quantized models: GGUF, then the safetensors checkpoint formats (one folder writer,
//! `checkpoint`, and a packer per format).
pub mod awq;
pub mod checkpoint;
pub mod compressed;
pub mod compressed_fp8;
pub mod compressed_fp8_block;
pub mod compressed_mx;
pub mod gguf;
pub mod gptq;
pub mod safetensors;

use std::path::Path;

use anyhow::{anyhow, Context, Result};

/// A temporary file beside `out`, named after it (`.NAME.XXXX.tmp`): on the same file system, so that
/// [`finish_file`] can rename it into place in one step, and the output appears only when complete.
/// Dropped without [`finish_file`] (an error on the way), it is removed.
pub fn file_beside(out: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = out
        .file_name()
        .ok_or_else(|| anyhow!("{}: not a file name", out.display()))?;
    tempfile::Builder::new()
        .prefix(&format!(".{}.", file_name.to_string_lossy()))
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("{}: cannot create a temporary file", dir.display()))
}

/// Makes a finished temporary file from [`file_beside`] readable by others (tempfile creates 0600; a
/// model file is as readable as any other output), syncs it, and renames it to `out`.
pub fn finish_file(tmp: tempfile::NamedTempFile, out: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("{}: cannot set permissions", out.display()))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("{}: cannot sync", out.display()))?;
    tmp.persist(out).map_err(|e| {
        anyhow!(
            "{}: cannot rename the finished file into place: {}",
            out.display(),
            e.error
        )
    })?;
    Ok(())
}

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
