//! Generates the C header with cbindgen and gives the shared library its soname.
//!
//! The header is always generated into `$OUT_DIR/quant.h`. `include/quant.h` is the committed copy that
//! users see; it is rewritten only when `QUANT_UPDATE_HEADER=1` is set, so that the test
//! `tests/header.rs` can tell when the committed header is stale.
use std::env;
use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=QUANT_UPDATE_HEADER");

    let major = env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
    let minor = env::var("CARGO_PKG_VERSION_MINOR").unwrap();
    let patch = env::var("CARGO_PKG_VERSION_PATCH").unwrap();
    let version = env::var("CARGO_PKG_VERSION").unwrap();

    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable and valid");
    config.after_includes = Some(format!(
        "\n/** Version of this header; compare with quant_version() to detect a mismatched library. */\n\
         #define QUANT_VERSION_MAJOR {major}\n\
         #define QUANT_VERSION_MINOR {minor}\n\
         #define QUANT_VERSION_PATCH {patch}\n\
         #define QUANT_VERSION_NUMBER ((QUANT_VERSION_MAJOR << 16) | (QUANT_VERSION_MINOR << 8) | QUANT_VERSION_PATCH)\n\
         #define QUANT_VERSION_STRING \"{version}\"\n"
    ));

    let generated = out_dir.join("quant.h");
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write_to_file(&generated);

    if env::var("QUANT_UPDATE_HEADER")
        .map(|v| v == "1")
        .unwrap_or(false)
    {
        std::fs::create_dir_all(crate_dir.join("include")).unwrap();
        std::fs::copy(&generated, crate_dir.join("include/quant.h")).unwrap();
    }

    // A soname lets the dynamic linker tell ABI generations apart (libquant.so.0 -> libquant.so.0.2.0).
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" || target_os == "android" || target_os.ends_with("bsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libquant.so.{major}");
    } else if target_os == "macos" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/libquant.{major}.dylib");
    }
}
