//! The committed `include/quant.h` is exactly what cbindgen generates from the current sources
//! (build.rs writes the fresh copy to `$OUT_DIR/quant.h`), and its version macros match the crate.

#[test]
fn committed_header_is_what_cbindgen_generates() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/quant.h"));
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/quant.h"))
            .expect("include/quant.h is committed");
    assert!(
        generated == committed,
        "include/quant.h is stale: regenerate it with `QUANT_UPDATE_HEADER=1 cargo build` and commit it"
    );
}

#[test]
fn header_version_macros_match_the_crate() {
    let header = include_str!(concat!(env!("OUT_DIR"), "/quant.h"));
    let value = |name: &str| -> u32 {
        let line = header
            .lines()
            .find(|l| l.starts_with(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("{name} is defined"));
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    let number = (value("QUANT_VERSION_MAJOR") << 16)
        | (value("QUANT_VERSION_MINOR") << 8)
        | value("QUANT_VERSION_PATCH");
    assert_eq!(number, quant::version_number());
    assert_eq!(quant::ffi::status::quant_version(), number);
    assert!(header.contains(&format!(
        "#define QUANT_VERSION_STRING \"{}\"",
        env!("CARGO_PKG_VERSION")
    )));
}

#[test]
fn every_public_name_in_the_header_is_prefixed() {
    let header = include_str!(concat!(env!("OUT_DIR"), "/quant.h"));
    for line in header.lines() {
        let name = if let Some(rest) = line.strip_prefix("#define ") {
            rest.split_whitespace().next()
        } else if let Some(rest) = line.strip_prefix("typedef ") {
            // `typedef struct {` opens an anonymous struct: its name is on the closing `} name;` line.
            let rest = rest.trim_end_matches(';').trim_end_matches('{').trim_end();
            rest.split_whitespace()
                .last()
                .filter(|n| !matches!(*n, "struct" | "union" | "enum"))
        } else if line.starts_with("} ") && line.ends_with(';') {
            Some(line[2..].trim_end_matches(';').trim())
        } else {
            None
        };
        if let Some(name) = name {
            assert!(
                name.starts_with("quant_") || name.starts_with("QUANT_"),
                "unprefixed name in quant.h: {line}"
            );
        }
    }
}
