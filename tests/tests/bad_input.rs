//! Every byte string gives a model or a typed error — never a panic — and every limit is a
//! defined behaviour.

use chispa_core::format::DType;
use chispa_core::format::{
    file_checksum, Header, TensorEntry, CHECKSUM_OFFSET, HEADER_BYTES, TENSOR_ENTRY_BYTES,
};
use chispa_core::{
    Event, FormatError, Generator, Model, PlanError, RunError, Sampler, SamplerConfig, Session,
    SessionOptions, StopReason,
};
use chispa_tests::stories_model;
use chispa_tools::aligned::AlignedBytes;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn parse(bytes: &[u8]) -> Result<(), FormatError> {
    let a = AlignedBytes::copy_from(bytes);
    Model::parse(a.as_slice()).map(|_| ())
}

fn reseal(bytes: &mut [u8]) {
    let crc = file_checksum(bytes);
    bytes[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
}

fn good() -> Vec<u8> {
    stories_model(DType::I8, None).expect("stories260K data").as_slice().to_vec()
}

#[test]
fn empty_truncated_trailing_and_random_bytes_are_typed_errors() {
    let file = good();
    assert!(matches!(parse(&[]), Err(FormatError::Truncated { needed: HEADER_BYTES, found: 0 })));
    assert!(matches!(parse(&file[..file.len() - 1]), Err(FormatError::Truncated { .. })));
    assert!(matches!(parse(&file[..100]), Err(FormatError::Truncated { .. })));
    let mut longer = file.clone();
    longer.push(0);
    assert!(matches!(parse(&longer), Err(FormatError::TrailingBytes { .. })));
    let mut rng = Rng(0x5eed);
    for len in [1, 4, 191, 192, 193, 4096, file.len()] {
        let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(parse(&junk).is_err(), "random {len} bytes parsed");
    }
}

#[test]
fn wrong_version_is_named() {
    let mut file = good();
    file[4] = 3; // version_major
    reseal(&mut file);
    let minor = chispa_core::format::VERSION_MINOR;
    assert_eq!(parse(&file), Err(FormatError::UnsupportedVersion { major: 3, minor }));
    // A version 1 file (the int8 scales laid out differently) is told to convert again.
    file[4] = 1;
    reseal(&mut file);
    let e = parse(&file).expect_err("version 1 is refused");
    assert_eq!(e, FormatError::UnsupportedVersion { major: 1, minor });
    assert!(e.to_string().contains("convert the model again with chispa-convert"), "{e}");
}

#[test]
fn ten_thousand_single_bit_flips_are_all_rejected() {
    let file = good();
    let mut rng = Rng(20261127);
    let mut copy = AlignedBytes::copy_from(&file);
    for _ in 0..10_000 {
        let bit = rng.below(file.len() * 8);
        let bytes = copy.as_mut_slice();
        bytes[bit / 8] ^= 1 << (bit % 8);
        let r = Model::parse(copy.as_slice()).map(|_| ());
        assert!(r.is_err(), "flip of bit {bit} was accepted");
        copy.as_mut_slice()[bit / 8] ^= 1 << (bit % 8);
    }
    assert!(Model::parse(copy.as_slice()).is_ok());
}

#[test]
fn resealed_random_edits_never_panic_and_valid_results_run() {
    // Edits to the header, the directory and the tokenizer tables with a correct checksum:
    // only the validation stands between them and the forward pass.
    let file = good();
    let aligned = AlignedBytes::copy_from(&file);
    let tok_start =
        Model::parse(aligned.as_slice()).expect("valid").header().scores_offset as usize;
    let mut rng = Rng(42);
    let mut accepted = 0;
    for _ in 0..3000 {
        let mut f = file.clone();
        for _ in 0..1 + rng.below(3) {
            let at = match rng.below(3) {
                0 => rng.below(HEADER_BYTES),
                1 => HEADER_BYTES + rng.below(64 * 32),
                _ => tok_start + rng.below(f.len() - tok_start),
            };
            let v = [0u8, 1, 0x7f, 0x80, 0xff][rng.below(5)];
            f[at] = if rng.below(2) == 0 { v } else { rng.next() as u8 };
        }
        reseal(&mut f);
        let a = AlignedBytes::copy_from(&f);
        if let Ok(m) = Model::parse(a.as_slice()) {
            accepted += 1;
            let opts = SessionOptions { context: 4, ..Default::default() };
            let mut arena = AlignedBytes::zeroed(m.plan(&opts).expect("plan").arena_bytes);
            let mut s = Session::new(&m, &opts, arena.as_mut_slice()).expect("session");
            for pos in 0..4 {
                s.forward((pos * 97 % m.config().vocab_size) as u32, pos).expect("forward");
            }
            let mut ids = [0u32; 64];
            let mut scratch = vec![0; ids.len() * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN];
            let _ = m.tokenizer().encode("Once upon a time 🙂", true, true, &mut ids, &mut scratch);
        }
    }
    eprintln!("{accepted} of 3000 edited files were still valid and ran");
}

#[test]
fn misaligned_bytes_are_refused() {
    let file = good();
    let mut buf = AlignedBytes::zeroed(file.len() + 1);
    buf.as_mut_slice()[1..].copy_from_slice(&file);
    assert_eq!(
        Model::parse(&buf.as_slice()[1..]).map(|_| ()),
        Err(FormatError::MisalignedBuffer { required: 16 })
    );
}

#[test]
fn arena_limits() {
    let a = AlignedBytes::copy_from(&good());
    let m = Model::parse(a.as_slice()).expect("valid");
    let opts = SessionOptions { context: 16, ..Default::default() };
    let need = m.plan(&opts).expect("plan").arena_bytes;
    let mut arena = AlignedBytes::zeroed(need + 16);
    assert_eq!(
        Session::new(&m, &opts, &mut arena.as_mut_slice()[..need - 1]).map(|_| ()),
        Err(PlanError::ArenaTooSmall { needed: need, given: need - 1 })
    );
    assert_eq!(
        Session::new(&m, &opts, &mut arena.as_mut_slice()[1..need + 1]).map(|_| ()),
        Err(PlanError::ArenaMisaligned)
    );
    assert!(Session::new(&m, &opts, &mut arena.as_mut_slice()[..need]).is_ok());
    let too_long = SessionOptions { context: 513, ..Default::default() };
    assert_eq!(
        m.plan(&too_long).map(|_| ()),
        Err(PlanError::BadContext { requested: 513, max: 512 })
    );
}

#[test]
fn generation_limits() {
    let a = AlignedBytes::copy_from(&good());
    let m = Model::parse(a.as_slice()).expect("valid");
    let opts = SessionOptions { context: 8, ..Default::default() };
    let mut arena = AlignedBytes::zeroed(m.plan(&opts).expect("plan").arena_bytes);
    let mut s = Session::new(&m, &opts, arena.as_mut_slice()).expect("session");
    let greedy = || Sampler::new(SamplerConfig::greedy());

    // A prompt longer than the context is refused before any work.
    let long = [1u32; 9];
    assert_eq!(
        Generator::new(&mut s, &long, 4, greedy()).map(|_| ()),
        Err(RunError::PromptTooLong { len: 9, context: 8 })
    );
    assert_eq!(Generator::new(&mut s, &[], 4, greedy()).map(|_| ()), Err(RunError::EmptyPrompt));
    assert_eq!(
        Generator::new(&mut s, &[1, 512], 4, greedy()).map(|_| ()),
        Err(RunError::TokenOutOfRange { id: 512, vocab: 512 })
    );

    // Zero steps: stops at once.
    let mut g = Generator::new(&mut s, &[1], 0, greedy()).expect("gen");
    assert_eq!(g.step(), Ok(Event::Stop(StopReason::MaxTokens)));

    // More steps than the context: ends with ContextFull after exactly ctx - len + 1 tokens.
    let prompt = [1u32, 403, 407];
    let mut g = Generator::new(&mut s, &prompt, 100, greedy()).expect("gen");
    let mut tokens = 0;
    let reason = loop {
        match g.step().expect("step") {
            Event::Token { .. } => tokens += 1,
            Event::Prompt { .. } => {}
            Event::Stop(r) => break r,
        }
    };
    assert_eq!(reason, StopReason::ContextFull);
    assert_eq!(tokens, 8 - prompt.len() + 1);
    assert_eq!(g.step(), Ok(Event::Stop(StopReason::ContextFull)), "stop repeats");

    // Extreme temperatures and top-p values are defined.
    for (t, p) in [(1e-9, 0.9), (100.0, 0.9), (1.0, 0.0), (1.0, 1.0), (1.0, 1e-9)] {
        let sampler = Sampler::new(SamplerConfig { temperature: t, top_p: p, seed: 3 });
        let mut g = Generator::new(&mut s, &prompt, 3, sampler).expect("gen");
        while let Ok(Event::Token { .. } | Event::Prompt { .. }) = g.step() {}
    }
    assert_eq!(
        s.forward(1, 8).map(|_| ()),
        Err(RunError::PositionOutOfRange { pos: 8, context: 8 })
    );
}

/// `good()` with directory entry `index` edited by `edit`, resealed.
fn with_entry(index: usize, edit: impl FnOnce(&mut TensorEntry, &Header)) -> Vec<u8> {
    let mut file = good();
    let h = Header::read(file[..HEADER_BYTES].try_into().expect("header"));
    let at = h.tensors_offset as usize + index * TENSOR_ENTRY_BYTES;
    let mut e = TensorEntry::read(file[at..at + TENSOR_ENTRY_BYTES].try_into().expect("entry"));
    edit(&mut e, &h);
    file[at..at + TENSOR_ENTRY_BYTES].copy_from_slice(&e.write());
    file[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&[0; 4]);
    reseal(&mut file);
    file
}

fn entry(index: usize) -> TensorEntry {
    let file = good();
    let h = Header::read(file[..HEADER_BYTES].try_into().expect("header"));
    let at = h.tensors_offset as usize + index * TENSOR_ENTRY_BYTES;
    TensorEntry::read(file[at..at + TENSOR_ENTRY_BYTES].try_into().expect("entry"))
}

#[test]
fn overlapping_tensors_are_refused() {
    // Tensors 1 (the final norm) and 2 (layer 0's attention norm): both f32 [dim].
    let first = entry(1);
    let file = with_entry(2, |e, _| e.data_offset = first.data_offset);
    match parse(&file) {
        Err(e @ FormatError::BadTensor { index: 2, .. }) => {
            assert!(e.to_string().contains("overlaps"), "{e}")
        }
        other => panic!("overlap accepted or misreported: {other:?}"),
    }
}

#[test]
fn tensor_data_outside_the_tensor_section_is_refused() {
    // Inside the header.
    let file = with_entry(1, |e, _| e.data_offset = 0);
    match parse(&file) {
        Err(e @ FormatError::BadTensor { index: 1, .. }) => {
            assert!(e.to_string().contains("overlaps the directory"), "{e}")
        }
        other => panic!("data in the header accepted or misreported: {other:?}"),
    }
    // Inside the tokenizer tables.
    let file = with_entry(1, |e, h| e.data_offset = h.scores_offset);
    match parse(&file) {
        Err(e @ FormatError::BadTensor { index: 1, .. }) => {
            assert!(e.to_string().contains("tokenizer tables"), "{e}")
        }
        other => panic!("data in the tokenizer accepted or misreported: {other:?}"),
    }
}

#[test]
fn a_head_width_on_an_architecture_without_one_is_refused() {
    let mut file = good();
    let at = chispa_core::format::Header::USED_BYTES - 4; // head_dim, the last field
    file[at..at + 4].copy_from_slice(&16u32.to_le_bytes());
    reseal(&mut file);
    assert_eq!(parse(&file), Err(FormatError::BadDimension { field: "head_dim", value: 16 }));
}
