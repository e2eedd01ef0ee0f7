//! The core tokenizer on arbitrary text and ids: no panic, and decoding what was encoded
//! gives the text back.
#![no_main]

use std::sync::OnceLock;

use chispa_core::Model;
use chispa_tools::aligned::AlignedBytes;
use libfuzzer_sys::fuzz_target;

static IMAGE: OnceLock<AlignedBytes> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let image = IMAGE.get_or_init(|| AlignedBytes::copy_from(&chispa_fuzz::tiny_image(7)));
    let Ok(model) = Model::parse(image.as_slice()) else { panic!("tiny model must parse") };
    let t = model.tokenizer();
    let text = String::from_utf8_lossy(data);
    let mut ids = vec![0u32; text.len() + 3];
    let mut scratch = vec![0; ids.len() * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN];
    let n = t
        .encode(&text, true, false, &mut ids, &mut scratch)
        .unwrap_or_else(|e| panic!("bound text.len()+3 holds: {e}"));
    let mut back = Vec::new();
    for w in ids[..n].windows(2) {
        back.extend_from_slice(t.decode(Some(w[0]), w[1]).bytes());
    }
    assert_eq!(back, text.as_bytes(), "round trip");
    // Arbitrary ids, in range or not.
    for pair in data.chunks_exact(4) {
        let a = u16::from_le_bytes([pair[0], pair[1]]) as u32;
        let b = u16::from_le_bytes([pair[2], pair[3]]) as u32;
        let _ = t.decode(Some(a), b);
        let _ = t.piece(b);
    }
    // A too-small buffer is an error, never a panic.
    let mut small = [0u32; 2];
    let mut scratch = vec![0; small.len() * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN];
    let _ = t.encode(&text, true, true, &mut small, &mut scratch);
});
