//! The C API from C: `tests/capi/generate.c` is compiled with the system C compiler against
//! `core/capi/include/chispa.h` and the host static library (`cargo build -p chispa-capi
//! --release`, in its own target directory), loads stories260K converted as the firmware
//! embeds it, and must print the text, token ids, stop reason and digest that chispa's Rust
//! runner computes for the same prompt and settings (`chispa run --digest`'s loop).
//!
//! Needs a C compiler: `$CC`, else `cc` (`apt-get install gcc`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use chispa_core::{
    Digest, Event, Generator, Model, Sampler, SamplerConfig, Session, SessionOptions, StopReason,
};
use chispa_runner::run::{arena_for, printable};
use chispa_tests::stories_model_with;
use chispa_tools::writer::WriteOptions;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `cmd`, failing with its output when it fails; its stderr is shown.
fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("cannot start {what} ({cmd:?})"))?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    ensure!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).with_context(|| format!("{what} printed invalid UTF-8"))
}

/// The C compiler, the static library and the C program; returns the compiler and library.
fn build_library() -> Result<(String, PathBuf)> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let probe = Command::new(&cc).arg("--version").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        bail!(
            "no C compiler: `{cc} --version` does not run. This test compiles \
             tests/capi/generate.c against the C API; install one (`apt-get install gcc`) or \
             set CC"
        );
    }
    let target_dir = root().join("target/capi-c");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(
        Command::new(cargo)
            .current_dir(root())
            .args(["build", "--quiet", "--release", "-p", "chispa-capi", "--target-dir"])
            .arg(&target_dir),
        "cargo build -p chispa-capi --release",
    )?;
    let lib = target_dir.join("release/libchispa_capi.a");
    ensure!(lib.is_file(), "the build made no {}", lib.display());
    Ok((cc, lib))
}

/// Compiles and links C `sources` against the header and the library into `exe`.
fn compile(cc: &str, lib: &Path, sources: &[PathBuf], exe: &Path) -> Result<()> {
    run(
        Command::new(cc)
            .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"])
            .arg("-I")
            .arg(root().join("core/capi/include"))
            .args(sources)
            .arg(lib)
            // What rustc lists for a static library with `std` on Linux
            // (`--print native-static-libs`).
            .args(["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"])
            .arg("-o")
            .arg(exe),
        &format!("compiling {sources:?}"),
    )
    .map(drop)
}

/// The C example of the README's "Embedding in C" section.
fn readme_example() -> Result<String> {
    let readme = std::fs::read_to_string(root().join("README.md"))?;
    let (_, section) =
        readme.split_once("## Embedding in C").context("no \"Embedding in C\" in README.md")?;
    let (_, code) = section.split_once("```c\n").context("no C example in that section")?;
    let (code, _) = code.split_once("```").context("the C example does not end")?;
    Ok(code.to_string())
}

/// One generation's settings.
struct Case {
    prompt: &'static str,
    steps: Option<usize>,
    kv: (&'static str, chispa_core::KvType),
    context: usize,
    temperature: f32,
    top_p: f32,
    seed: u64,
}

/// What a run printed or computed.
#[derive(Debug, PartialEq)]
struct Output {
    text: String,
    ids: Vec<u32>,
    stop: &'static str,
    digest: String,
}

/// `chispa run`'s generation loop through the Rust API: the prompt encoded with BOS, a
/// session with the desktop's kernels, the digest of ids and logit bits, printable text.
fn reference(model: &Model<'_>, c: &Case) -> Result<Output> {
    let tok = model.tokenizer();
    let mut ids = vec![0u32; c.prompt.len() + 3];
    let mut scratch = vec![0u32; ids.len() * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN];
    let n = tok.encode(c.prompt, true, false, &mut ids, &mut scratch)?;
    ids.truncate(n);
    let options = SessionOptions { context: c.context, kv: c.kv.1 };
    let mut arena = arena_for(model, &options)?;
    let mut session = Session::new(model, &options, arena.as_mut_slice())?;
    session.set_kernels(chispa_runner::threads::kernels());
    let sampling = SamplerConfig { temperature: c.temperature, top_p: c.top_p, seed: c.seed };
    let steps = c.steps.unwrap_or(usize::MAX);
    let mut gen = Generator::new(&mut session, &ids, steps, Sampler::new(sampling))?;
    let mut digest = Digest::new();
    digest.tokens(&ids);
    let (mut text, mut out) = (Vec::new(), Vec::new());
    let stop = loop {
        let ev = gen.step()?;
        digest.event(&ev, gen.logits());
        match ev {
            Event::Prompt { .. } => {}
            Event::Token { id, prev } => {
                out.push(id);
                text.extend_from_slice(printable(tok.decode(Some(prev), id)));
            }
            Event::Stop(r) => break r,
        }
    };
    Ok(Output {
        text: String::from_utf8(text).context("the story is not UTF-8")?,
        ids: out,
        stop: match stop {
            StopReason::MaxTokens => "max_tokens",
            StopReason::EndOfSequence { .. } => "end_of_sequence",
            StopReason::ContextFull => "context_full",
        },
        digest: format!("{:016x}", digest.value()),
    })
}

/// Parses the C program's output (see tests/capi/generate.c).
fn parse(stdout: &str) -> Result<Output> {
    let (text, rest) = stdout.rsplit_once("\nids:").context("no ids line")?;
    let mut lines = rest.lines();
    let ids = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(|s| s.parse().with_context(|| format!("bad id {s:?}")))
        .collect::<Result<Vec<u32>>>()?;
    let field = |line: Option<&str>, name: &str| -> Result<String> {
        line.and_then(|l| l.strip_prefix(name))
            .map(str::to_string)
            .with_context(|| format!("no {name:?} line in {stdout:?}"))
    };
    let stop = field(lines.next(), "stop: ")?;
    let digest = field(lines.next(), "digest: ")?;
    let stop = ["max_tokens", "end_of_sequence", "context_full", "none"]
        .into_iter()
        .find(|s| *s == stop)
        .with_context(|| format!("unknown stop {stop:?}"))?;
    Ok(Output { text: text.to_string(), ids, stop, digest })
}

#[test]
fn c_program_prints_the_desktop_story_and_digest() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (cc, lib) = build_library()?;
    let exe = dir.path().join("generate");
    compile(&cc, &lib, &[root().join("tests/capi/generate.c")], &exe)?;
    // The model as `cargo xtask` converts it for the firmware.
    let bytes = stories_model_with(&WriteOptions::default())?;
    let model_path = dir.path().join("stories260K.chispa");
    std::fs::write(&model_path, bytes.as_slice())?;
    let model = Model::parse(bytes.as_slice())?;
    let cases = [
        // The firmware's run (README: `chispa run MODEL -p "Once upon a time" -n 200
        // --temperature 0 --kv int8 --digest`).
        Case {
            prompt: "Once upon a time",
            steps: Some(200),
            kv: ("int8", chispa_core::KvType::I8),
            context: 0,
            temperature: 0.0,
            top_p: 0.9,
            seed: 42,
        },
        // Sampled, f32 KV, until the context is full.
        Case {
            prompt: "Lily and Ben",
            steps: None,
            kv: ("f32", chispa_core::KvType::F32),
            context: 128,
            temperature: 0.8,
            top_p: 0.9,
            seed: 7,
        },
    ];
    for c in &cases {
        let want = reference(&model, c)?;
        let steps = c.steps.map_or("max".to_string(), |n| n.to_string());
        let stdout = run(
            Command::new(&exe)
                .arg(&model_path)
                .arg(c.prompt)
                .args([&steps, c.kv.0, &c.context.to_string()])
                .args([c.temperature.to_string(), c.top_p.to_string(), c.seed.to_string()]),
            "tests/capi/generate.c",
        )?;
        let got = parse(&stdout)?;
        eprintln!(
            "{:?}, {steps} steps, {} KV, context {}, temperature {}, top-p {}, seed {}: {} tokens, stop {}, digest {} (C) / {} (Rust)",
            c.prompt, c.kv.0, c.context, c.temperature, c.top_p, c.seed, got.ids.len(), got.stop,
            got.digest, want.digest
        );
        assert!(want.ids.len() > 20, "a story: {want:?}");
        assert_eq!(got, want, "the C program and the Rust runner differ");
    }

    // The README's example, with the model embedded as firmware does (`.incbin`, 16-byte
    // aligned, in read-only data): it prints the first case's story and digest.
    let example = dir.path().join("readme.c");
    std::fs::write(&example, readme_example()?)?;
    let main = dir.path().join("main.c");
    let model_file = model_path.to_str().context("a temporary path that is not UTF-8")?;
    std::fs::write(
        &main,
        format!(
            "#include <stddef.h>\n#include <stdint.h>\n\
             __asm__(\".section .rodata\\n.balign 16\\n.globl model\\nmodel:\\n.incbin \\\"{model_file}\\\"\\n.previous\");\n\
             const size_t model_len = {};\nvoid story(void);\nint main(void) {{ story(); return 0; }}\n",
            bytes.as_slice().len()
        ),
    )?;
    let readme_exe = dir.path().join("readme");
    compile(&cc, &lib, &[example, main], &readme_exe)?;
    let stdout = run(&mut Command::new(&readme_exe), "the README's example")?;
    let want = reference(&model, &cases[0])?;
    let (text, digest) = stdout.rsplit_once("\ndigest: ").context("no digest from the example")?;
    eprintln!("README example: digest {}", digest.trim());
    assert_eq!((text, digest.trim()), (want.text.as_str(), want.digest.as_str()));
    Ok(())
}
