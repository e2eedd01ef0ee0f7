//! The core alone on a tiny synthetic model (the fuzz seed, made from no shared data): this is
//! what `cargo miri test -p chispa-core` runs through parse, plan, forward, sampling and the
//! tokenizer, looking for undefined behaviour.

use chispa_core::format::{file_checksum, CHECKSUM_OFFSET};
use chispa_core::{
    Event, FormatError, Generator, KvType, Model, Sampler, SamplerConfig, SamplerFilters, Session,
    SessionOptions,
};

#[repr(C, align(16))]
struct Aligned<const N: usize>([u8; N]);

const TINY_LEN: usize = include_bytes!("../../tests/fuzz/corpus/parse_raw/tiny.chispa").len();

static TINY: Aligned<TINY_LEN> =
    Aligned(*include_bytes!("../../tests/fuzz/corpus/parse_raw/tiny.chispa"));

#[repr(C, align(16))]
struct Arena([u8; 16384]);

#[test]
fn tiny_model_generates_and_round_trips_text() {
    let model = Model::parse(&TINY.0).expect("the seed parses");
    let c = *model.config();
    assert_eq!((c.dim, c.hidden_dim, c.n_layers, c.vocab_size), (16, 24, 2, 300));
    let options = SessionOptions { context: 8, ..Default::default() };
    let plan = model.plan(&options).expect("plan");
    let mut arena = Arena([0; 16384]);
    assert!(plan.arena_bytes <= arena.0.len(), "{}", plan.arena_bytes);
    let mut session =
        Session::new(&model, &options, &mut arena.0[..plan.arena_bytes]).expect("session");
    let mut prompt = [0u32; 32];
    let mut scratch = vec![0; prompt.len() * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN];
    let n = model
        .tokenizer()
        .encode("Once the", true, false, &mut prompt, &mut scratch)
        .expect("encode");
    let sampler = Sampler::new(SamplerConfig { temperature: 0.8, top_p: 0.9, seed: 5 });
    let mut gen = Generator::new(&mut session, &prompt[..n], 4, sampler).expect("generator");
    let mut steps = 0;
    while let Ok(Event::Prompt { .. } | Event::Token { .. }) = gen.step() {
        steps += 1;
        assert!(gen.logits().iter().all(|v| v.is_finite()));
    }
    assert!(steps >= n - 1);

    let t = model.tokenizer();
    for text in ["", " ", "the and é🙂", "zzz\n\t"] {
        let mut ids = [0u32; 64];
        let mut scratch = vec![0; ids.len() * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN];
        let n = t.encode(text, true, false, &mut ids, &mut scratch).expect("encode");
        let mut back = Vec::new();
        for w in ids[..n].windows(2) {
            back.extend_from_slice(t.decode(Some(w[0]), w[1]).bytes());
        }
        assert_eq!(back, text.as_bytes());
    }
}

#[test]
fn corruptions_are_typed_errors() {
    let bytes = &TINY.0;
    assert!(matches!(Model::parse(&bytes[..bytes.len() - 16]), Err(FormatError::Truncated { .. })));
    let mut copy = Aligned([0u8; TINY_LEN]);
    // Miri interprets every instruction: a few flips there, many natively.
    let step = if cfg!(miri) { 24_001 } else { 997 };
    for bit in (0..bytes.len() * 8).step_by(step) {
        copy.0.copy_from_slice(bytes);
        copy.0[bit / 8] ^= 1 << (bit % 8);
        assert!(Model::parse(&copy.0).is_err(), "bit {bit}");
        // With the checksum repaired, validation alone must hold (Ok or a typed error).
        let crc = file_checksum(&copy.0);
        copy.0[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
        if let Ok(m) = Model::parse(&copy.0) {
            let options = SessionOptions { context: 2, ..Default::default() };
            let mut arena = Arena([0; 16384]);
            if let Ok(p) = m.plan(&options) {
                if p.arena_bytes <= arena.0.len() {
                    let mut s =
                        Session::new(&m, &options, &mut arena.0[..p.arena_bytes]).expect("session");
                    let _ = s.forward(1, 0);
                }
            }
        }
    }
}

#[test]
fn every_kv_type_runs_and_stays_close_to_f32() {
    // Under Miri this walks the packed (k10v7) and int8 cache code for undefined behaviour;
    // natively it checks each type's logits stay near the exact cache's.
    let model = Model::parse(&TINY.0).expect("the seed parses");
    let mut exact = [[0.0f32; 300]; 6];
    for kv in KvType::ALL {
        let options = SessionOptions { context: 6, kv };
        let plan = model.plan(&options).expect("plan");
        let mut arena = Arena([0; 16384]);
        let mut session =
            Session::new(&model, &options, &mut arena.0[..plan.arena_bytes]).expect("session");
        for (pos, token) in [1u32, 300 - 1, 7, 42, 259, 3].into_iter().enumerate() {
            let logits = session.forward(token, pos).expect("forward");
            if kv == KvType::F32 {
                exact[pos].copy_from_slice(logits);
            }
            let worst =
                logits.iter().zip(&exact[pos]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst < 0.05, "{} KV, position {pos}: max |Δlogit| {worst}", kv.name());
        }
    }
}

/// What the firmware does (`firmware/src/main.rs`): fixed buffers, `encode_vec`, a
/// `Generator` stepped to its end; here with top-k, min-p and a repeat penalty over a window
/// lent as an array.
fn firmware_style_ids(config: SamplerConfig, filters: SamplerFilters) -> heapless::Vec<u32, 64> {
    let model = Model::parse(&TINY.0).expect("the seed parses");
    let options = SessionOptions { context: 24, ..Default::default() };
    let plan = model.plan(&options).expect("plan");
    let mut arena = Arena([0; 16384]);
    let mut session =
        Session::new(&model, &options, &mut arena.0[..plan.arena_bytes]).expect("session");
    let ids: heapless::Vec<u32, 32> =
        model.tokenizer().encode_vec("Once the", true, false).expect("encode");
    let mut window = [0u32; 6];
    let sampler = Sampler::with_filters(config, filters, &mut window);
    let mut gen = Generator::new(&mut session, &ids, 16, sampler).expect("generator");
    let mut out = heapless::Vec::new();
    while let Ok(ev) = gen.step() {
        match ev {
            Event::Prompt { .. } => {}
            Event::Token { id, .. } => out.push(id).expect("capacity"),
            Event::Stop(_) => break,
        }
    }
    out
}

/// The same run written out by hand, as a desktop loop would: `forward`, the sampler on a
/// copy of the logits, every prompt and sampled token accepted into a `Vec` window.
fn desktop_style_ids(config: SamplerConfig, filters: SamplerFilters) -> Vec<u32> {
    let model = Model::parse(&TINY.0).expect("the seed parses");
    let options = SessionOptions { context: 24, ..Default::default() };
    let plan = model.plan(&options).expect("plan");
    let mut arena = Box::new(Arena([0; 16384]));
    let mut session =
        Session::new(&model, &options, &mut arena.0[..plan.arena_bytes]).expect("session");
    let mut ids = vec![0u32; 32];
    let mut scratch = vec![0; ids.len() * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN];
    let n =
        model.tokenizer().encode("Once the", true, false, &mut ids, &mut scratch).expect("encode");
    ids.truncate(n);
    let mut window = vec![0u32; 6];
    let mut sampler = Sampler::with_filters(config, filters, &mut window);
    ids.iter().for_each(|id| sampler.accept(*id));
    let vocab = model.config().vocab_size;
    let mut scratch = vec![0u32; vocab];
    let mut out = Vec::new();
    let mut token = ids[0];
    for pos in 0..options.context {
        let mut logits = session.forward(token, pos).expect("forward").to_vec();
        if pos + 1 < ids.len() {
            token = ids[pos + 1];
            continue;
        }
        if out.len() == 16 {
            break;
        }
        token = sampler.sample(&mut logits, &mut scratch);
        sampler.accept(token);
        out.push(token);
        if model.is_stop(token) {
            out.pop();
            break;
        }
    }
    out
}

#[test]
#[cfg_attr(
    miri,
    ignore = "three generation runs take many minutes interpreted; the tests above take the same \
              code through Miri"
)]
fn the_firmware_generate_path_matches_a_desktop_loop_with_top_k_and_repeat_penalty() {
    let config = SamplerConfig { temperature: 0.9, top_p: 0.95, seed: 77 };
    let filters = SamplerFilters { top_k: 5, min_p: 0.02, repeat_penalty: 1.4 };
    let fw = firmware_style_ids(config, filters);
    let desk = desktop_style_ids(config, filters);
    assert!(!fw.is_empty());
    assert_eq!(&fw[..], &desk[..]);
    // The filters do something: the penalty and top-k change the ids (same seed).
    let plain = firmware_style_ids(config, SamplerFilters::default());
    assert_ne!(&fw[..], &plain[..]);
}
