//! `include/chispa.h` is what cbindgen generates from the sources now: a stale header fails
//! here. `CHISPA_UPDATE_HEADER=1` rewrites it instead.

use std::path::Path;

#[test]
fn header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))
        .unwrap_or_else(|e| panic!("reading cbindgen.toml: {e}"));
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen cannot generate the header: {e}"))
        .write(&mut generated);
    let path = dir.join("include/chispa.h");
    if std::env::var_os("CHISPA_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("writing {path:?}: {e}"));
        return;
    }
    let current = std::fs::read(&path).unwrap_or_default();
    assert!(
        current == generated,
        "{} is not what cbindgen generates from the sources; regenerate it with \
         `CHISPA_UPDATE_HEADER=1 cargo test -p chispa-capi --test header` and commit it",
        path.display()
    );
}
