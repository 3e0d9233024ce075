//! `quant inspect`: what a model holds (architecture, metadata, tensors, parameters, size).
use std::path::Path;

use anyhow::Result;

use crate::model::GgufFile;

/// Prints a summary of the GGUF file at `path` to stdout.
pub fn run(path: &Path) -> Result<()> {
    let g = GgufFile::open(path)?;
    println!("file          {}", path.display());
    println!(
        "format        GGUF v{} (alignment {})",
        g.version(),
        g.alignment()
    );
    println!("architecture  {}", g.architecture().unwrap_or("(none)"));
    if let Some(n) = g.get("general.name").and_then(|v| v.as_str()) {
        println!("name          {n}");
    }
    let params: u64 = g.tensors().iter().map(|t| t.n_elements()).sum();
    let bytes: u64 = g.tensors().iter().map(|t| t.n_bytes).sum();
    println!(
        "parameters    {params} ({:.1} M), tensor data {bytes} bytes ({:.2} bits per weight)",
        params as f64 / 1e6,
        bytes as f64 * 8.0 / params.max(1) as f64
    );
    println!("\nmetadata ({} keys)", g.metadata().len());
    for (k, v) in g.metadata() {
        println!("  {k:<40} {v}");
    }
    println!("\ntensors ({})", g.tensors().len());
    let w = g.tensors().iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in g.tensors() {
        println!(
            "  {:<w$}  {:<6}  {:?}",
            t.name,
            t.dtype.to_string(),
            t.shape()
        );
    }
    Ok(())
}
