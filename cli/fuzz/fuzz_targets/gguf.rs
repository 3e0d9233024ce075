#![no_main]
use libfuzzer_sys::fuzz_target;
use quant_cli::model::dequantize;
use quant_cli::model::gguf::Header;

fuzz_target!(|data: &[u8]| {
    let Ok(h) = Header::parse(data) else { return };
    assert_eq!(h.data_offset % h.alignment, 0);
    for t in &h.tensors {
        let start = (h.data_offset + t.offset) as usize;
        let end = start + t.n_bytes as usize;
        assert!(end <= data.len(), "tensor '{}' beyond the input", t.name);
        // Bounded decode: the reader accepted the shape, so the sizes agree.
        let n = t.n_elements();
        if n <= 1 << 16 {
            let mut out = vec![0f32; n as usize];
            let _ = dequantize(t.dtype, &data[start..end], &mut out);
        }
    }
});
