#![no_main]
//! Any bytes as an importance-matrix file (llama-imatrix's GGUF or legacy format): the reader either
//! gives an error or an imatrix whose every entry yields its weights, and a GGUF one writes back and
//! reads again to the same imatrix; never a panic.
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use quant_cli::imatrix::Imatrix;

/// A folder of this process; the input and the written copy are rewritten for each input.
fn folder() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("quant-fuzz-imatrix-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = folder();
    let input = dir.join("in");
    std::fs::write(&input, data).unwrap();
    let Ok(m) = Imatrix::read(&input) else { return };
    for (name, s) in &m.entries {
        let w = m.weights(name).expect("an entry has weights");
        assert_eq!(w.len(), s.sums.len());
    }
    if !m.legacy {
        let copy = dir.join("copy.gguf");
        m.write(&copy).expect("a read imatrix writes");
        assert_eq!(Imatrix::read(&copy).expect("a written imatrix reads"), m);
    }
});
