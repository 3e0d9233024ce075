//! Every `extern "C"` export is `#[no_mangle]`, named `quant_*`, and runs its body through the panic
//! boundary (`boundary(` or `boundary_value(`), except the `_free` functions, which only drop a box.
use std::path::Path;

fn ffi_sources() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ffi");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

/// The body of the function that starts at byte `start` (from its first `{` to the matching `}`).
fn body_of(src: &str, start: usize) -> &str {
    let open = start + src[start..].find('{').unwrap();
    let mut depth = 0;
    for (i, c) in src[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &src[open..open + i + 1];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces")
}

#[test]
fn every_export_goes_through_the_panic_boundary() {
    let mut exports = 0;
    for (path, src) in ffi_sources() {
        let mut from = 0;
        while let Some(pos) = src[from..].find("pub extern \"C\" fn ") {
            let start = from + pos;
            from = start + 1;
            let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
            if !src[line_start..start].trim().is_empty() {
                continue; // a mention in a comment, not a definition
            }
            let name: String = src[start + 18..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let before = &src[..start];
            let attr_ok = before.trim_end().ends_with("#[no_mangle]")
                || before.trim_end().ends_with("#[unsafe(no_mangle)]");
            assert!(
                attr_ok,
                "{path}: {name} is not directly preceded by #[no_mangle]"
            );
            assert!(
                name.starts_with("quant_"),
                "{path}: export {name} lacks the quant_ prefix"
            );
            let body = body_of(&src, start);
            let guarded = body.contains("boundary(") || body.contains("boundary_value(");
            let is_free = name.ends_with("_free") && body.contains("free_handle(");
            assert!(
                guarded || is_free,
                "{path}: {name} does not go through the panic boundary"
            );
            exports += 1;
        }
    }
    assert!(exports >= 4, "found only {exports} exports");
}
