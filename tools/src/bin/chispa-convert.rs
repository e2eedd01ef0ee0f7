//! `chispa-convert`: turn trained weights into one `.chispa` file, and look inside one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use chispa_core::format::DType;
use chispa_core::Model;
use chispa_tools::aligned::AlignedBytes;
use chispa_tools::calibrate::DEFAULT_TARGET_SNR_DB;
use chispa_tools::source::{self, Input, SourceModel};
use chispa_tools::writer::{self, Groups, WriteOptions};
use chispa_tools::{gguf_writer, inspect, out, outln, output, stdout, synth};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

/// Convert trained language-model weights into a single `.chispa` file for chispa.
///
/// The output holds the architecture, the (int8-quantized) tensors and the tokenizer; it is
/// written to a temporary file and renamed only when complete and verified, so a failure
/// never leaves a partial or corrupt model behind.
///
/// Exit codes: 0 success, 1 the input or output could not be used, 2 bad command line.
#[derive(Parser, Debug)]
#[command(name = "chispa-convert", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Convert a llama2.c checkpoint (legacy version-0 `.bin`) and its `tokenizer.bin`.
    Llama2c {
        /// The checkpoint, e.g. stories260K.bin.
        checkpoint: PathBuf,
        /// The llama2.c tokenizer, e.g. tok512.bin.
        #[arg(long, short)]
        tokenizer: PathBuf,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Convert a Hugging Face folder (config.json, model.safetensors or shards, tokenizer.json).
    Hf {
        /// The folder, e.g. a `huggingface-cli download` target.
        dir: PathBuf,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Convert a llama.cpp GGUF file (v3, `llama` architecture, F32/F16/Q8_0 tensors).
    Gguf {
        /// The .gguf file.
        file: PathBuf,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// A random-weight model in a TinyStories shape (stories15M, stories42M, stories110M), for
    /// benchmarks: same tensors, same sizes, same speed, no meaning.
    Synth {
        /// The shape.
        #[arg(long)]
        shape: String,
        /// Output file.
        #[arg(long, short)]
        output: PathBuf,
        /// Weight seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Element type of the matrices.
        #[arg(long, value_enum, default_value_t = Dtype::Int8)]
        dtype: Dtype,
        /// int8 quantization group for every matrix (llama.cpp's Q8_0 uses 32).
        #[arg(long, default_value_t = 32)]
        group_size: usize,
        /// Also write the same random weights as a GGUF file (matrices Q8_0), so another
        /// engine (llama.cpp's llama-bench) can be measured on identical shapes and values.
        #[arg(long, value_name = "FILE")]
        gguf: Option<PathBuf>,
    },
    /// Describe a .chispa file: header, tensors, tokenizer, memory plans.
    Inspect {
        /// The model file.
        file: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Dtype {
    /// Symmetric int8 with f16 group scales.
    Int8,
    /// 32-bit float (reference; 4× larger).
    F32,
}

impl From<Dtype> for DType {
    fn from(d: Dtype) -> Self {
        match d {
            Dtype::Int8 => DType::I8,
            Dtype::F32 => DType::F32,
        }
    }
}

/// Where and how every conversion writes.
#[derive(Args, Debug)]
struct OutputArgs {
    /// Output file.
    #[arg(long, short)]
    output: PathBuf,
    /// Element type of the matrices (norms always stay f32).
    #[arg(long, value_enum, default_value_t = Dtype::Int8)]
    dtype: Dtype,
    /// int8 quantization group for every matrix: inputs that share one f16 scale. Any
    /// width works (the last group of a row may be shorter). Without it, groups are chosen
    /// per matrix (see --target-snr).
    #[arg(long)]
    group_size: Option<usize>,
    /// Logit SNR (dB) the int8 model must reach on calibration text sampled from the model
    /// itself: the fixed groups (32, 16 for w2, 8 for the classifier) are kept if they reach
    /// it, otherwise the most sensitive matrices get finer groups (measured; see README).
    /// 0: the fixed groups, no calibration.
    #[arg(long, default_value_t = DEFAULT_TARGET_SNR_DB, conflicts_with = "group_size", value_parser = parse_snr)]
    target_snr: f32,
    /// Print only the summary, not the per-tensor report.
    #[arg(long, short)]
    quiet: bool,
}

fn parse_snr(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err("expected a finite number of dB ≥ 0 (0: the fixed groups)".into()),
    }
}

impl OutputArgs {
    fn options(&self) -> WriteOptions {
        let groups = match self.group_size {
            Some(g) => Groups::Uniform(g),
            None if self.target_snr > 0.0 => Groups::Calibrated { target_snr_db: self.target_snr },
            None => Groups::Fixed,
        };
        WriteOptions { dtype: self.dtype.into(), groups }
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    output::read_input(path)
}

/// Reads `input` with its format's reader, prints what was recognised, writes `output`.
fn convert(input: Input<'_>, output: &Path, opts: WriteOptions, quiet: bool) -> Result<()> {
    let start = Instant::now();
    let named: Vec<&Path> = match &input {
        Input::Llama2c { checkpoint, tokenizer } => vec![checkpoint, tokenizer],
        Input::Hf(p) | Input::Gguf(p) => vec![p],
    };
    output::check(output, &named)?;
    let converted = source::read(&input)?;
    for line in &converted.recognised {
        eprintln!("recognised  {line}");
    }
    let inputs: Vec<&Path> = converted.inputs.iter().map(PathBuf::as_path).collect();
    write_model(&converted.model, output, &inputs, opts, quiet, start)
}

fn write_model(
    source: &SourceModel,
    output: &Path,
    inputs: &[&Path],
    opts: WriteOptions,
    quiet: bool,
    start: Instant,
) -> Result<()> {
    let bar = ProgressBar::new(source.tensors.len() as u64).with_style(
        ProgressStyle::with_template("quantizing  {bar:30} {pos}/{len} tensors")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (image, report) = writer::build(source, &opts, |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    if !quiet {
        outln!(
            "{:<24} {:>13} {:>6} {:>5} {:>9} {:>10} {:>11}",
            "tensor",
            "shape",
            "dtype",
            "group",
            "bytes",
            "SNR dB",
            "max |err|"
        )?;
        for t in &report.tensors {
            let (snr, err) = match t.stats {
                Some(s) => (format!("{:.1}", s.snr_db), format!("{:.2e}", s.max_abs_err)),
                None => ("exact".into(), "0".into()),
            };
            outln!(
                "{:<24} {:>13} {:>6} {:>5} {:>9} {:>10} {:>11}",
                t.name,
                format!("[{}, {}]", t.rows, t.cols),
                t.dtype.name(),
                if t.group == 0 { "-".to_string() } else { t.group.to_string() },
                t.bytes,
                snr,
                err
            )?;
        }
    }
    if let Some(c) = &report.calibration {
        let refined: Vec<String> = c
            .units
            .iter()
            .filter(|u| u.group != u.fixed_group)
            .map(|u| format!("{} {}", u.name, u.group))
            .collect();
        eprintln!(
            "calibration logit SNR {:.1} dB with the fixed groups on {} sampled positions (target {:.1} dB){}",
            c.fixed_snr_db,
            c.positions,
            c.target_snr_db,
            if refined.is_empty() {
                ": kept".to_string()
            } else {
                format!(
                    "; {:.1} dB (predicted {:.1}) after {} passes with finer groups for {}",
                    c.snr_db,
                    c.predicted_snr_db,
                    c.evaluations,
                    refined.join(", ")
                )
            }
        );
    }
    let worst = report
        .tensors
        .iter()
        .filter_map(|t| t.stats.map(|s| (s.snr_db, &t.name)))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    output::write(output, inputs, image.as_slice())?;
    outln!(
        "wrote {}: {} parameters, {} bytes ({}), {}{} in {:.2}s",
        output.display(),
        report.parameters,
        report.file_bytes,
        opts.dtype.name(),
        match opts.dtype {
            DType::I8 => match opts.groups {
                Groups::Uniform(g) => format!("group size {g}"),
                Groups::Fixed => "fixed groups (32, 16 for w2, 8 for the classifier)".into(),
                Groups::Calibrated { .. } => match &report.calibration {
                    Some(c) if c.units.iter().any(|u| u.group != u.fixed_group) => {
                        "groups chosen by calibration".into()
                    }
                    _ => "fixed groups (32, 16 for w2, 8 for the classifier), kept by calibration"
                        .into(),
                },
            },
            DType::F32 => "no quantization".into(),
        },
        worst.map_or(String::new(), |(snr, name)| format!(", lowest SNR {snr:.1} dB ({name})")),
        start.elapsed().as_secs_f64()
    )
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Llama2c { checkpoint, tokenizer, out } => convert(
            Input::Llama2c { checkpoint: &checkpoint, tokenizer: &tokenizer },
            &out.output,
            out.options(),
            out.quiet,
        ),
        Command::Hf { dir, out } => convert(Input::Hf(&dir), &out.output, out.options(), out.quiet),
        Command::Gguf { file, out } => {
            convert(Input::Gguf(&file), &out.output, out.options(), out.quiet)
        }
        Command::Synth { shape, output, seed, dtype, group_size, gguf } => {
            let dtype: DType = dtype.into();
            let start = Instant::now();
            output::check(&output, &[])?;
            if let Some(g) = &gguf {
                output::check(g, &[])?;
                if g == &output || std::path::absolute(g).ok() == std::path::absolute(&output).ok()
                {
                    bail!("--gguf {} is also the --output path", g.display());
                }
            }
            let source = synth::model(&shape, seed)?;
            let (image, report) = writer::build(
                &source,
                &WriteOptions { dtype, groups: Groups::Uniform(group_size) },
                |_, _| {},
            )?;
            output::write(&output, &[], image.as_slice())?;
            outln!(
                "wrote {}: random {shape} (seed {seed}), {} parameters, {} bytes ({}, group {group_size}) in {:.1}s",
                output.display(),
                report.parameters,
                report.file_bytes,
                dtype.name(),
                start.elapsed().as_secs_f64()
            )?;
            if let Some(path) = gguf {
                let bytes = gguf_writer::write(&source, gguf_writer::GgufType::Q8_0)?;
                output::write(&path, &[&output], &bytes)?;
                outln!(
                    "wrote {}: the same weights as GGUF (Q8_0), {} bytes",
                    path.display(),
                    bytes.len()
                )?;
            }
            Ok(())
        }
        Command::Inspect { file } => {
            let bytes = AlignedBytes::copy_from(&read(&file)?);
            let model = Model::parse(bytes.as_slice())
                .with_context(|| format!("{} is not a valid .chispa model", file.display()))?;
            out!("{}", inspect::describe(&model))
        }
    }
}

fn main() -> ExitCode {
    let cli = match chispa_tools::usage::parse::<Cli>("chispa-convert") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if let Err(e) = output::remove_temps_on_signals() {
        eprintln!("chispa-convert: error: {e:#}");
        return ExitCode::FAILURE;
    }
    match run(cli).and_then(|()| stdout::flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if stdout::is_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chispa-convert: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
