#![no_main]
//! Any bytes as the one shard of a Hugging Face Llama folder: the reader either opens it, and then
//! every tensor it lists reads (or fails) without panicking, or gives an error.
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use quant_cli::model::safetensors::SafetensorsDir;
use quant_cli::model::Source;

/// A folder of this process holding a fixed config.json; the shard is rewritten for each input.
fn folder() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("quant-fuzz-safetensors-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let config = r#"{"model_type": "llama", "num_hidden_layers": 1, "hidden_size": 8,
            "intermediate_size": 16, "num_attention_heads": 2, "num_key_value_heads": 1,
            "max_position_embeddings": 32, "vocab_size": 4, "tie_word_embeddings": true}"#;
        std::fs::write(d.join("config.json"), config).unwrap();
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = folder();
    std::fs::write(dir.join("model.safetensors"), data).unwrap();
    let Ok(st) = SafetensorsDir::open(dir) else { return };
    let mut out = vec![];
    for t in st.tensors() {
        let n: u64 = t.dims.iter().product();
        // Bounded work per input: the reader accepted the shape, so the sizes agree.
        if n <= 1 << 16 {
            let _ = st.raw(&t.name);
            let _ = st.read_f32(&t.name, &mut out);
        }
    }
});
