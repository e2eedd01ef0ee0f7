//! Hugging Face folders from arbitrary bytes (`config.json`, `tokenizer.json`,
//! `model.safetensors`, see `chispa_fuzz::pack_hf`): the reader refuses or converts, and what
//! converts must run.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

static DIR: OnceLock<PathBuf> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            "/dev/shm".into()
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("chispa-fuzz-hf-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        d
    });
    let names = ["config.json", "tokenizer.json", "model.safetensors"];
    for (name, bytes) in names.iter().zip(chispa_fuzz::unpack_hf(data)) {
        std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    if let Ok(converted) = chispa_tools::hf::read_dir(dir) {
        chispa_fuzz::convert_and_exercise(&converted.model);
    }
});
