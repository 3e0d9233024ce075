//! `quant inspect`: what a model holds (architecture, metadata, tensors, parameters, size) and,
//! given `--type` or `--rules`, the plan that quantization would follow.
use std::io::Write;
use std::path::Path;

use anyhow::Result;

use crate::plan::Mix;
use crate::quantize::{make_plan, open_source};

/// Prints a summary of the model at `path` (and the plan, if asked) to stdout.
pub fn run(path: &Path, mix: Option<Mix>, rules: Option<&Path>) -> Result<()> {
    let src = open_source(path)?;
    let plan = if mix.is_some() || rules.is_some() {
        Some(make_plan(src.as_ref(), mix, rules)?)
    } else {
        None
    };
    let mut out = std::io::stdout().lock();
    let r = (|| -> std::io::Result<()> {
        let inputs = src.tensors();
        let info = src.info();
        writeln!(out, "file          {}", path.display())?;
        writeln!(
            out,
            "architecture  {} ({} blocks)",
            if info.arch.is_empty() {
                "(none)"
            } else {
                &info.arch
            },
            info.n_layer
        )?;
        let meta = src.metadata();
        if let Some(n) = meta
            .iter()
            .find(|(k, _)| k == "general.name")
            .and_then(|(_, v)| v.as_str())
        {
            writeln!(out, "name          {n}")?;
        }
        let params: u64 = inputs.iter().map(|t| t.dims.iter().product::<u64>()).sum();
        let bytes: u64 = inputs
            .iter()
            .map(|t| t.dtype.bytes_for(t.dims.iter().product()).unwrap_or(0))
            .sum();
        writeln!(
            out,
            "parameters    {params} ({:.1} M), tensor data {bytes} bytes ({:.2} bits per weight)",
            params as f64 / 1e6,
            bytes as f64 * 8.0 / params.max(1) as f64
        )?;
        writeln!(out, "\nmetadata ({} keys)", meta.len())?;
        for (k, v) in &meta {
            writeln!(out, "  {k:<40} {v}")?;
        }
        let w = inputs.iter().map(|t| t.name.len()).max().unwrap_or(0);
        match &plan {
            None => {
                writeln!(out, "\ntensors ({})", inputs.len())?;
                for t in &inputs {
                    let shape: Vec<u64> = t.dims.iter().rev().copied().collect();
                    writeln!(
                        out,
                        "  {:<w$}  {:<6}  {:?}",
                        t.name,
                        t.dtype.to_string(),
                        shape
                    )?;
                }
            }
            Some(p) => {
                writeln!(out, "\nplan ({} tensors, in output order)", p.entries.len())?;
                let mut total = 0u64;
                for e in &p.entries {
                    let shape: Vec<u64> = e.dims.iter().rev().copied().collect();
                    total += e.n_bytes();
                    writeln!(
                        out,
                        "  {:<w$}  {:<14}  {:<6} -> {:<6}  {}",
                        e.name,
                        format!("{shape:?}"),
                        e.src.to_string(),
                        e.target.to_string(),
                        if e.is_copy() {
                            format!("copy ({})", e.why)
                        } else {
                            e.why.clone()
                        }
                    )?;
                }
                writeln!(
                    out,
                    "\noutput tensor data {total} bytes ({:.2} bits per weight)",
                    total as f64 * 8.0 / params.max(1) as f64
                )?;
            }
        }
        Ok(())
    })();
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}
