//! `cargo xtask fit-costs`: runs the firmware under QEMU on models of different shapes and KV
//! caches, counts each run's work with `chispa_runner::cost::counts`, fits the per-feature
//! instruction costs per core (non-negative least squares on relative error) and writes
//! `firmware/boards/costs.toml`, which `chispa plan` reads. `cargo xtask test-qemu` checks
//! the fitted costs against fresh runs of other model × KV combinations ([`VALIDATE`]).

use std::path::PathBuf;

use anyhow::{bail, ensure, Context, Result};
use chispa_core::KvType;
use chispa_runner::cost::{self, CoreCosts, Estimate, FEATURES};
use chispa_runner::load::{load, ModelSource};
use chispa_tools::writer::{self, write_atomic, Groups, WriteOptions};

use crate::test::firmware_kv;
use crate::{default_chispa, measured_boards, root, run_qemu, Board, Kv};

/// Where a case's model comes from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Source {
    /// stories260K, int8 (the default model).
    Stories260K,
    /// stories260K as `chispa-convert --dtype int4` writes it (int4 and int8 matrices).
    Stories260KInt4,
    /// A Hugging Face folder in `DATA/reference/hf/`, converted with the default options.
    Hf(&'static str),
    /// `chispa-convert synth --shape SHAPE --group-size GROUP` (seed 1).
    Synth(&'static str, usize),
    /// The same with every matrix int4 (`--dtype int4 --int4-min-snr 0`).
    Synth4(&'static str, usize),
}

/// One model × KV cache run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Case {
    /// Short name (the model file's name).
    pub(crate) name: &'static str,
    pub(crate) source: Source,
    pub(crate) kv: Kv,
}

/// Context and new tokens of every case: positions from the prompt (5 to 17 tokens) to
/// about 110 of the 128.
const CONTEXT: usize = 128;
const STEPS: usize = 96;

const fn case(name: &'static str, source: Source, kv: Kv) -> Case {
    Case { name, source, kv }
}

const S260K: Source = Source::Stories260K;
const LLAMA_TINY: Source = Source::Hf("llama-tiny");
const GPT2_TINY: Source = Source::Hf("gpt2-tiny");
/// Heads of 24, one key/value head each, groups of 32.
const WIDE_SHAPE: &str = "dim=96,hidden=256,layers=2,heads=4,vocab=400,context=128";
const WIDE: Source = Source::Synth(WIDE_SHAPE, 32);
/// Heads of 8 in pairs (the int8 assembly attention), groups of 64.
const PAIRS8: Source =
    Source::Synth("dim=64,hidden=128,layers=3,heads=8,kv_heads=4,vocab=300,context=128", 64);
/// One layer, two heads of 64 sharing one key/value head, groups of 16.
const ONE_LAYER_SHAPE: &str =
    "dim=128,hidden=320,layers=1,heads=2,kv_heads=1,vocab=600,context=128";
const ONE_LAYER: Source = Source::Synth(ONE_LAYER_SHAPE, 16);
/// Heads of 8 unpaired, groups of 8.
const DEEP8_SHAPE: &str = "dim=48,hidden=160,layers=4,heads=6,vocab=512,context=128";
const DEEP8: Source = Source::Synth(DEEP8_SHAPE, 8);
/// Groups of 2 (the Rust row driver), heads of 16.
const SMALL_GROUPS: Source =
    Source::Synth("dim=80,hidden=200,layers=2,heads=5,vocab=260,context=128", 2);
/// GPT-2's block, heads of 32.
const GPT2: Source =
    Source::Synth("arch=gpt2,dim=64,hidden=192,layers=3,heads=2,vocab=300,context=128", 32);
/// Six thin layers, a larger vocabulary.
const THIN: Source =
    Source::Synth("dim=32,hidden=96,layers=6,heads=4,kv_heads=2,vocab=700,context=128", 8);

/// Inputs wider than the DSP assembly row loops take (264 > 256): the Rust row driver with
/// groups of 32 on the M4 and M33.
const WIDE_ROWS: Source =
    Source::Synth("dim=264,hidden=64,layers=1,heads=2,kv_heads=1,vocab=259,context=128", 32);

/// A large vocabulary on a narrow model: the classifier's rows and the sampler dominate
/// (assembly row loops, and the Rust row driver with groups of 2).
const VOCAB_SHAPE: &str = "dim=32,hidden=64,layers=1,heads=2,vocab=4096,context=128";
const VOCAB: Source = Source::Synth(VOCAB_SHAPE, 32);
const VOCAB_G2: Source =
    Source::Synth("dim=32,hidden=64,layers=1,heads=2,vocab=4096,context=128", 2);

/// The runs the costs are fitted to (on each core's first QEMU board).
pub(crate) const FIT: &[Case] = &[
    case("stories260K", S260K, Kv::Int8),
    case("stories260K", S260K, Kv::K10v7),
    case("stories260K", S260K, Kv::F32),
    case("llama-tiny", LLAMA_TINY, Kv::Int8),
    case("gpt2-tiny", GPT2_TINY, Kv::Int8),
    case("gpt2-tiny", GPT2_TINY, Kv::K10v7),
    case("wide", WIDE, Kv::Int8),
    case("wide", WIDE, Kv::K10v7),
    case("wide", WIDE, Kv::F32),
    case("pairs8", PAIRS8, Kv::Int8),
    case("pairs8", PAIRS8, Kv::F32),
    case("one-layer", ONE_LAYER, Kv::Int8),
    case("one-layer", ONE_LAYER, Kv::K10v7),
    case("deep8", DEEP8, Kv::Int8),
    case("deep8", DEEP8, Kv::K10v7),
    case("deep8", DEEP8, Kv::F32),
    case("small-groups", SMALL_GROUPS, Kv::Int8),
    case("small-groups", SMALL_GROUPS, Kv::F32),
    case("gpt2", GPT2, Kv::Int8),
    case("gpt2", GPT2, Kv::K10v7),
    case("gpt2", GPT2, Kv::F32),
    case("thin", THIN, Kv::Int8),
    case("thin", THIN, Kv::K10v7),
    case("wide-rows", WIDE_ROWS, Kv::Int8),
    case("wide-rows", WIDE_ROWS, Kv::F32),
    case("vocab", VOCAB, Kv::Int8),
    case("vocab-g2", VOCAB_G2, Kv::Int8),
    // int4 matrices: groups of 32, 16 and 8, rows from 32 to 4096.
    case("wide-i4", Source::Synth4(WIDE_SHAPE, 32), Kv::Int8),
    case("one-layer-i4", Source::Synth4(ONE_LAYER_SHAPE, 16), Kv::K10v7),
    case("deep8-i4", Source::Synth4(DEEP8_SHAPE, 8), Kv::Int8),
    case("vocab-i4", Source::Synth4(VOCAB_SHAPE, 32), Kv::Int8),
];

/// Model × KV combinations the fit has not seen (two models and two KV types it has, in
/// other combinations; two shapes it has not), checked by `cargo xtask test-qemu`.
pub(crate) const VALIDATE: &[Case] = &[
    case("llama-tiny", LLAMA_TINY, Kv::K10v7),
    case("stories260K-int4", Source::Stories260KInt4, Kv::Int8),
    case("gpt2-tiny", GPT2_TINY, Kv::F32),
    case(
        "heads12",
        Source::Synth("dim=72,hidden=224,layers=3,heads=6,kv_heads=3,vocab=480,context=128", 32),
        Kv::Int8,
    ),
    case(
        "gpt2-wide",
        Source::Synth("arch=gpt2,dim=96,hidden=256,layers=2,heads=4,vocab=350,context=128", 16),
        Kv::K10v7,
    ),
];

/// The largest relative error `test-qemu` accepts between the plan and QEMU.
pub(crate) const TOLERANCE: f64 = 0.15;

fn kv_type(kv: Kv) -> KvType {
    match kv {
        Kv::F32 => KvType::F32,
        Kv::F16 => KvType::F16,
        Kv::Int8 => KvType::I8,
        Kv::K10v7 => KvType::K10V7,
    }
}

pub(crate) fn kv_name(kv: Kv) -> &'static str {
    match kv {
        Kv::F32 => "f32",
        Kv::F16 => "f16",
        Kv::Int8 => "int8",
        Kv::K10v7 => "k10v7",
    }
}

/// The case's model as a `.chispa` file under `target/xtask/costs/` (made once per content).
fn model_file(source: Source, name: &str) -> Result<PathBuf> {
    let bytes = match source {
        Source::Stories260K => return default_chispa(),
        Source::Stories260KInt4 => return crate::int4_chispa(),
        Source::Hf(folder) => {
            let config =
                chispa_runner::data::data_file(&format!("reference/hf/{folder}/config.json"))?;
            let path = config.parent().context("no folder")?.to_path_buf();
            let loaded = load(&ModelSource {
                path: Some(path),
                tokenizer: None,
                convert: WriteOptions::default(),
                convert_given: false,
                no_cache: false,
            })?;
            loaded.bytes.as_slice().to_vec()
        }
        Source::Synth(shape, group) | Source::Synth4(shape, group) => {
            let src = chispa_tools::synth::model(shape, 1)?;
            let int4 = matches!(source, Source::Synth4(..));
            let opts = WriteOptions {
                dtype: if int4 { chispa_core::DType::I4 } else { chispa_core::DType::I8 },
                groups: Groups::Uniform(group),
                mix: writer::Mix { int4_min_snr_db: 0.0, max_bytes: None },
            };
            writer::build(&src, &opts, |_, _| {})?.0.as_slice().to_vec()
        }
    };
    let out = root().join("target/xtask/costs").join(format!("{name}.chispa"));
    if std::fs::read(&out).ok().as_deref() != Some(bytes.as_slice()) {
        std::fs::create_dir_all(out.parent().context("no parent")?)?;
        write_atomic(&out, &bytes)?;
    }
    Ok(out)
}

/// stories15M's shape with random weights (`chispa-convert synth --shape stories15M`, seed
/// 1, groups of 32), as a file under `target/xtask/costs/`.
pub(crate) fn stories15m() -> Result<PathBuf> {
    model_file(Source::Synth("stories15M", 32), "stories15M")
}

/// One QEMU run: instructions at attended positions, and the mean over the generation.
#[derive(Debug)]
pub(crate) struct Measured {
    /// Prompt tokens.
    pub(crate) prompt: usize,
    /// Generated tokens (a stop token included).
    pub(crate) generated: usize,
    /// `(attended positions, instructions)` of single tokens.
    pub(crate) points: Vec<(f64, f64)>,
    /// Mean instructions per generated token.
    pub(crate) mean: f64,
    /// The model's feature counts.
    pub(crate) counts: cost::Counts,
}

/// Prompt tokens, generated tokens, `(attended positions, instructions)` points, the mean.
type Logged = (usize, usize, Vec<(f64, f64)>, f64);

/// Parses a firmware log: the `instructions at token K (position P): X` lines, the
/// `stop: ...; prompt N tokens, generated M` line and the mean `instructions/token: X`.
fn parse_log(log: &str) -> Result<Logged> {
    let mut points = Vec::new();
    let (mut prompt, mut generated, mut mean) = (None, None, None);
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix("instructions at token ") {
            let pos = rest.split("(position ").nth(1).and_then(|r| r.split(')').next());
            let x = rest.rsplit(": ").next();
            if let (Some(p), Some(x)) = (pos, x) {
                let (p, x): (f64, f64) = (p.trim().parse()?, x.trim().parse()?);
                points.push((p + 1.0, x));
            }
        } else if let Some(rest) = line.strip_prefix("stop: ") {
            let num = |key: &str| -> Option<usize> {
                rest.split(key).nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
            };
            prompt = num("prompt ");
            generated = num("generated ");
        } else if let Some(x) = line.strip_prefix("instructions/token: ") {
            mean = x.trim().parse().ok();
        }
    }
    match (prompt, generated, mean) {
        (Some(p), Some(g), Some(m)) if g > 0 => Ok((p, g, points, m)),
        _ => bail!("the log has no prompt/generated/instructions lines:\n{log}"),
    }
}

/// Builds and runs `case` on `board` (with `reuse`, takes the log the last run saved under
/// `target/xtask/costs/` instead, if any) and counts the model's features.
pub(crate) fn measure(board: Board, case: &Case, reuse: bool) -> Result<Measured> {
    let path = model_file(case.source, case.name)?;
    let saved = root().join("target/xtask/costs").join(format!(
        "{}-{}-{}.log",
        board.name(),
        case.name,
        kv_name(case.kv)
    ));
    let log = match std::fs::read_to_string(&saved).ok().filter(|_| reuse) {
        Some(log) => log,
        None => {
            let mut fw = firmware_kv(board, STEPS, CONTEXT, None, case.kv);
            fw.model = Some(path.clone());
            let (code, log) = run_qemu(&fw, true)?;
            ensure!(
                code == 0,
                "{} {}: the firmware exited with {code}:\n{log}",
                board.name(),
                case.name
            );
            std::fs::write(&saved, &log)?;
            log
        }
    };
    from_log(board, &path, case.kv, &log)
}

/// A run's measurements from its log, with the feature counts of the model at `path`.
pub(crate) fn from_log(
    board: Board,
    path: &std::path::Path,
    kv: Kv,
    log: &str,
) -> Result<Measured> {
    let (prompt, generated, points, mean) = parse_log(log)?;
    let bytes = chispa_tools::aligned::AlignedBytes::copy_from(&std::fs::read(path)?);
    let model = chispa_core::Model::parse(bytes.as_slice())
        .with_context(|| format!("{} is not a valid model", path.display()))?;
    let counts = cost::counts(&model, kv_type(kv), board.cpu());
    Ok(Measured { prompt, generated, points, mean, counts })
}

/// The plan's mean instructions per token for a measured run, with `costs`.
pub(crate) fn predicted(m: &Measured, costs: &CoreCosts) -> Estimate {
    Estimate::new(&m.counts, costs)
}

/// One residual line: model, KV, core, predicted, measured, error.
pub(crate) fn residual_line(case: &Case, core: &str, pred: f64, meas: f64) -> String {
    format!(
        "| {} | {} | {core} | {:.0} | {:.0} | {:+.1} % |",
        case.name,
        kv_name(case.kv),
        pred,
        meas,
        100.0 * (pred - meas) / meas
    )
}

/// Runs every [`FIT`] case on one board per core, fits, writes `costs.toml` and prints the
/// residuals (fit and [`VALIDATE`] cases).
pub(crate) fn fit_costs(reuse: bool) -> Result<()> {
    let mut all: Vec<chispa_boards::Costs> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut table = vec![
        "| model | KV | core | predicted | measured | error |".to_string(),
        "|---|---|---|---|---|---|".to_string(),
    ];
    for board in measured_boards()? {
        let core = board.cpu();
        if all.iter().any(|c| c.core == core) {
            continue;
        }
        let mut runs = Vec::new();
        for case in FIT {
            eprintln!("fit-costs: {} {} {}", board.name(), case.name, kv_name(case.kv));
            runs.push((case, measure(board, case, reuse)?));
        }
        // Each observation divided by its measurement: the fit minimises relative error.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (_, m) in &runs {
            let mut obs: Vec<(f64, f64)> = m.points.clone();
            obs.push((cost::mean_attended(m.prompt, m.generated), m.mean));
            for (n, y) in obs {
                a.push(m.counts.at(n).iter().map(|c| c / y).collect::<Vec<f64>>());
                b.push(1.0);
            }
        }
        let x = cost::nnls(&a, &b);
        // A feature is fitted when some run has it; its cost may be 0 (not worth counting).
        let used =
            |i: usize| runs.iter().any(|(_, m)| m.counts.fixed[i] + m.counts.per_position[i] > 0.0);
        let costs: Vec<(String, f64)> = FEATURES
            .iter()
            .enumerate()
            .filter(|(i, _)| used(*i))
            .map(|(i, f)| (f.name.to_string(), x[i]))
            .collect();
        let leaked: Vec<(&'static str, f64)> = costs.iter().map(|(n, v)| (leak(n), *v)).collect();
        let fitted = CoreCosts {
            core: leak(core),
            board: leak(board.name()),
            costs: Box::leak(leaked.into_boxed_slice()),
        };
        let mut note = String::from("fit residuals (mean instructions/token):\n");
        for (case, m) in &runs {
            let pred = predicted(m, &fitted).mean(m.prompt, m.generated);
            let line = residual_line(case, core, pred, m.mean);
            note.push_str(&line);
            note.push('\n');
            table.push(format!("{line} fit"));
        }
        for case in VALIDATE {
            eprintln!("fit-costs: validation {} {} {}", board.name(), case.name, kv_name(case.kv));
            let m = measure(board, case, reuse)?;
            let pred = predicted(&m, &fitted).mean(m.prompt, m.generated);
            table.push(format!("{} validation", residual_line(case, core, pred, m.mean)));
        }
        notes.push(note);
        all.push(chispa_boards::Costs { core: core.into(), board: board.name().into(), costs });
    }
    let header = format!(
        "Fitted by `cargo xtask fit-costs`; do not edit by hand. Instructions per unit of each\n\
         feature of chispa_runner::cost (std-runner/src/cost.rs), per core, fitted (non-negative\n\
         least squares, relative error) to QEMU instruction counts (-icount shift=0) of {} runs:\n\
         stories260K, llama-tiny, gpt2-tiny and random-weight shapes, int8 and int4 weights,\n\
         int8, k10v7 and f32 KV caches, context {CONTEXT}, {STEPS} new tokens, greedy. Read by chispa plan (through\n\
         chispa-runner's build script); checked by `cargo xtask test-qemu` on other combinations.",
        FIT.len()
    );
    let dir = chispa_boards::boards_dir();
    let path = chispa_boards::costs_path(&dir);
    std::fs::write(&path, chispa_boards::costs_toml(&all, &header, &notes))
        .with_context(|| format!("cannot write {}", path.display()))?;
    for l in &table {
        println!("{l}");
    }
    println!("{}", path.display());
    Ok(())
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// The plan's mean instructions per token for a logged run of the model at `path` within
/// [`TOLERANCE`] of the run's; the residual line either way.
pub(crate) fn plan_within_tolerance(
    board: Board,
    name: &'static str,
    path: &std::path::Path,
    kv: Kv,
    log: &str,
) -> Result<String> {
    let costs = cost::core_costs(board.cpu()).with_context(|| {
        format!("no fitted costs for {}: run `cargo xtask fit-costs`", board.cpu())
    })?;
    let m = from_log(board, path, kv, log)?;
    let pred = predicted(&m, costs).mean(m.prompt, m.generated);
    let line = residual_line(&case(name, Source::Stories260K, kv), board.cpu(), pred, m.mean);
    ensure!(
        (pred - m.mean).abs() <= TOLERANCE * m.mean,
        "the plan is more than {:.0} % off QEMU: {line}",
        TOLERANCE * 100.0
    );
    Ok(line)
}

/// `test-qemu`'s check: each [`VALIDATE`] case on `board`, the plan's mean instructions per
/// token (the costs built into chispa-runner) within [`TOLERANCE`] of QEMU's.
pub(crate) fn validate(board: Board) -> Result<Vec<String>> {
    let Some(costs) = cost::core_costs(board.cpu()) else {
        bail!(
            "no fitted costs for {} in firmware/boards/costs.toml: run `cargo xtask fit-costs`",
            board.cpu()
        );
    };
    let mut lines = Vec::new();
    let mut bad = Vec::new();
    for case in VALIDATE {
        let m = measure(board, case, false)?;
        let e = predicted(&m, costs);
        ensure!(
            e.missing.is_empty(),
            "{} {}: no fitted cost for {}: run `cargo xtask fit-costs`",
            case.name,
            kv_name(case.kv),
            e.missing.join(", ")
        );
        let pred = e.mean(m.prompt, m.generated);
        let line = residual_line(case, board.cpu(), pred, m.mean);
        if (pred - m.mean).abs() > TOLERANCE * m.mean {
            bad.push(line.clone());
        }
        lines.push(line);
    }
    ensure!(
        bad.is_empty(),
        "the plan is more than {:.0} % off QEMU:\n{}",
        TOLERANCE * 100.0,
        bad.join("\n")
    );
    Ok(lines)
}
