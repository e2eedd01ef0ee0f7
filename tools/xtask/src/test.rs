//! `cargo xtask test-qemu`: the firmware under QEMU against `chispa run` on the desktop.
//!
//! For each QEMU board, first the kernel self-test (the board's kernels against the scalar code
//! on the board), then: stories260K int8, prompt "Once upon a time", greedy, N tokens, int8
//! KV over the full 512-token context in at most 200 KiB of RAM; the generated ids, the text
//! and the digest must equal `chispa run MODEL -p ... -n N --temperature 0 --digest --kv int8`.
//! The same with the k10v7 KV cache (int8's bytes). `chispa plan`'s instructions per token
//! within 15 % of fresh runs of model × KV combinations its costs were not fitted to
//! (`costs::VALIDATE`), a plan that does not fit refused before linking, and stories15M's
//! shape on an RP2350-sized budget. Then the 128-token context in 64 KiB, int4 stories260K
//! on qemu-m4 (40 tokens), a corrupted model (must exit 1 with an error, not fault), the
//! fault handler of each architecture (an undefined instruction must exit 5 with a message), and the real-board
//! builds (their links check flash, RAM and the stack reserve).
//! The prompts come at run time through the firmware's console (semihosting stdin): the runs
//! above use the firmware's default prompt (no prompt typed), and one run types two prompts
//! with different sampling settings and checks each against `chispa run` with the same; the
//! same two prompts again over RTT (`qemu-m4-rtt`, the probe-rs boards' console, with the
//! xtask as the probe) and over a UART (`qemu-m4-uart`, the MPS2's CMSDK UART0).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::{default_chispa, exec_qemu, int4_chispa, root, run_qemu, Board, Firmware, Kv, QemuRun};

const PROMPT: &str = "Once upon a time";

/// The stack budget: the reserve `firmware/build.rs` keeps free of static data at link time
/// (`CHISPA_STACK_RESERVE`, default 4096). The measured high-water mark must stay within it.
const STACK_BUDGET: u64 = 4096;

/// The stack high-water mark a run logged, checked against [`STACK_BUDGET`].
fn stack_within_budget(log: &str) -> Result<()> {
    let used = field(log, "stack high-water:")
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .context("no stack report")?;
    ensure!(used <= STACK_BUDGET, "stack high-water {used} B is over the {STACK_BUDGET} B budget");
    Ok(())
}

fn firmware(board: Board, steps: usize, context: usize, ram_kib: Option<u32>) -> Firmware {
    firmware_kv(board, steps, context, ram_kib, Kv::Int8)
}

pub(crate) fn firmware_kv(
    board: Board,
    steps: usize,
    context: usize,
    ram_kib: Option<u32>,
    kv: Kv,
) -> Firmware {
    Firmware {
        board,
        model: None,
        prompts: Vec::new(),
        interactive: false,
        steps,
        temperature: 0.0,
        top_p: 0.9,
        seed: 42,
        context,
        kv,
        ram_kib,
        corrupt_byte: None,
        fault_test: false,
        selftest: false,
        timeout: 600,
    }
}

/// What a run printed: generated ids, text, digest.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Run {
    ids: Vec<u32>,
    text: String,
    pub(crate) digest: String,
}

fn desktop(steps: usize, context: usize) -> Result<Run> {
    desktop_kv(steps, context, "int8")
}

pub(crate) fn desktop_kv(steps: usize, context: usize, kv: &str) -> Result<Run> {
    desktop_run(
        &Sampling { prompt: PROMPT, steps, temperature: 0.0, top_p: 0.9, seed: 42 },
        context,
        kv,
    )
}

/// A prompt and the settings it is generated with.
#[derive(Debug, Clone, Copy)]
struct Sampling<'a> {
    prompt: &'a str,
    steps: usize,
    temperature: f32,
    top_p: f32,
    seed: u64,
}

/// `chispa run` on the desktop with the default model: its ids, text and digest.
fn desktop_run(s: &Sampling<'_>, context: usize, kv: &str) -> Result<Run> {
    desktop_run_with(&default_chispa()?, &[], s, context, kv)
}

/// `chispa run MODEL EXTRA...` on the desktop: its ids, text and digest.
fn desktop_run_with(
    model: &Path,
    extra: &[&str],
    s: &Sampling<'_>,
    context: usize,
    kv: &str,
) -> Result<Run> {
    let args = |json: bool| {
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.current_dir(root())
            .args(["run", "--quiet", "--release", "-p", "chispa-runner", "--", "run"])
            .arg(model)
            .args(extra)
            .args(["-p", s.prompt, "-n", &s.steps.to_string()])
            .args(["--temperature", &s.temperature.to_string(), "--top-p", &s.top_p.to_string()])
            .args(["--seed", &s.seed.to_string(), "--digest"])
            .args(["--kv", kv, "--context", &context.to_string()]);
        if json {
            c.arg("--json");
        }
        c
    };
    let text = args(false).output().context("cannot run chispa")?;
    ensure!(text.status.success(), "chispa run failed: {}", String::from_utf8_lossy(&text.stderr));
    // A random-weight model may stream pieces that are not whole UTF-8 (byte tokens): both
    // sides are read the same lossy way.
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    let (body, digest) = text.rsplit_once("digest: ").context("no digest line from chispa run")?;
    let json = args(true).output().context("cannot run chispa --json")?;
    ensure!(json.status.success(), "chispa run --json failed");
    let mut ids = Vec::new();
    for line in String::from_utf8_lossy(&json.stdout).lines() {
        // One object per token: `"id":N` with its bytes and text (the summary has no id).
        if let Some((_, rest)) = line.split_once("\"id\":") {
            let id = rest.split([',', '}']).next().unwrap_or_default().trim();
            ids.push(id.parse().with_context(|| format!("bad id in {line}"))?);
        }
    }
    Ok(Run { ids, text: body.to_string(), digest: digest.trim().to_string() })
}

/// Two prompts typed in one firmware run, the second with other settings typed before it:
/// each run's ids, text and digest equal `chispa run` with that prompt and those settings.
fn two_prompts(board: Board, steps: usize) -> Result<()> {
    let first = Sampling { prompt: PROMPT, steps, temperature: 0.0, top_p: 0.9, seed: 42 };
    let second = Sampling {
        prompt: "Lily and Ben went to the park",
        steps: 60,
        temperature: 0.8,
        top_p: 0.9,
        seed: 7,
    };
    let mut fw = firmware(board, first.steps, 0, Some(200));
    fw.prompts = vec![
        first.prompt.into(),
        format!(
            "/set steps={} temperature={} top-p={} seed={}",
            second.steps, second.temperature, second.top_p, second.seed
        ),
        second.prompt.into(),
    ];
    let r = exec_qemu(&fw, true)?;
    print!("{}{}", r.console, r.log);
    ensure!(r.code == 0, "{}: exit status {}", board.name(), r.code);
    stack_within_budget(&r.log)?;
    let runs = parse_firmware(&r)?;
    ensure!(runs.len() == 2, "{} runs in the log, expected 2", runs.len());
    for (fw_run, s) in runs.iter().zip([first, second]) {
        let desk = desktop_run(&s, 0, "int8")?;
        println!("desktop {:?}: {} ids, digest {}", s.prompt, desk.ids.len(), desk.digest);
        compare(board, fw_run, &desk)?;
    }
    Ok(())
}

/// A random-weight chat model (llama-tiny's shapes, SmolLM's tokenizer and chat template from
/// `tests/data/tokenizers/smollm`) on the board: the prompt typed at run time is wrapped in
/// the model's chat prefix and suffix, and the run equals `chispa run MODEL --chat`.
fn chat_prompt(board: Board) -> Result<()> {
    let dir = root().join("tests/data/tokenizers/smollm");
    let source = chispa_tools::synth::instruct_model(&dir)?;
    let opts = chispa_tools::writer::WriteOptions {
        dtype: chispa_core::format::DType::I8,
        groups: chispa_tools::writer::Groups::Fixed,
        ..Default::default()
    };
    let bytes = chispa_tools::writer::build(&source, &opts, |_, _| {})?.0;
    let model = root().join("target/xtask/chat-smollm.chispa");
    chispa_tools::writer::write_atomic(&model, bytes.as_slice())?;
    let s =
        Sampling { prompt: "Tell me a story.", steps: 24, temperature: 0.0, top_p: 0.9, seed: 42 };
    let mut fw = firmware(board, s.steps, 0, None);
    fw.model = Some(model.clone());
    fw.prompts = vec![s.prompt.into()];
    let r = exec_qemu(&fw, true)?;
    print!("{}{}", r.console, r.log);
    ensure!(r.code == 0, "{}: exit status {}", board.name(), r.code);
    ensure!(r.log.contains("chat: true"), "the firmware did not wrap the prompt");
    let desk = desktop_run_with(&model, &["--chat"], &s, 0, "int8")?;
    println!("desktop --chat {:?}: {} ids, digest {}", s.prompt, desk.ids.len(), desk.digest);
    compare(board, &single(&r)?, &desk)
}

/// The runs of one firmware execution: per `prompt:` line of the log, its ids and digest,
/// and its text from the console (the segments between `Prompt> ` markers that hold text,
/// in order; a `/set` answer and the end of input hold none).
fn parse_firmware(r: &QemuRun) -> Result<Vec<Run>> {
    let mut runs: Vec<Run> = Vec::new();
    for line in r.log.lines() {
        if line.starts_with("prompt: ") {
            runs.push(Run::default());
        } else if let Some(list) = line.strip_prefix("ids: ") {
            let run = runs.last_mut().context("ids before any prompt")?;
            for id in list.trim_matches(|c| c == '[' || c == ']').split(',') {
                run.ids.push(id.trim().parse().with_context(|| format!("bad ids line {line}"))?);
            }
        } else if let Some(d) = line.strip_prefix("digest: ") {
            runs.last_mut().context("digest before any prompt")?.digest = d.trim().to_string();
        }
    }
    let texts: Vec<&str> = r
        .console
        .split("Prompt> ")
        .map(|seg| seg.strip_prefix('\n').unwrap_or(seg))
        .filter(|seg| !seg.is_empty() && !seg.starts_with("settings: "))
        .collect();
    ensure!(
        texts.len() == runs.len(),
        "{} runs in the log but {} texts on the console:\n{}",
        runs.len(),
        texts.len(),
        r.console
    );
    for (run, text) in runs.iter_mut().zip(texts) {
        ensure!(!run.digest.is_empty(), "the firmware printed no digest");
        run.text = text.to_string();
    }
    ensure!(!runs.is_empty(), "the firmware ran no prompt");
    Ok(runs)
}

/// The single run of an execution without prompts (the firmware's default prompt).
fn single(r: &QemuRun) -> Result<Run> {
    let mut runs = parse_firmware(r)?;
    ensure!(runs.len() == 1, "{} runs, expected 1", runs.len());
    Ok(runs.remove(0))
}

pub(crate) fn field(log: &str, key: &str) -> Option<String> {
    log.lines().find_map(|l| l.split_once(key).map(|(_, v)| v.trim().to_string()))
}

fn compare(board: Board, fw: &Run, desk: &Run) -> Result<()> {
    let name = board.name();
    if fw.ids != desk.ids {
        let at = fw.ids.iter().zip(&desk.ids).position(|(a, b)| a != b);
        bail!(
            "{name}: token ids differ from the desktop (first difference at {at:?}; {} vs {} ids)",
            fw.ids.len(),
            desk.ids.len()
        );
    }
    ensure!(
        fw.text == desk.text,
        "{name}: text differs:\n{}\n--- desktop ---\n{}",
        fw.text,
        desk.text
    );
    ensure!(fw.digest == desk.digest, "{name}: digest {} != desktop {}", fw.digest, desk.digest);
    Ok(())
}

/// The measured figures file (`firmware/boards/measured.toml`) describes this firmware:
/// instructions per token within 3 %, code within 8 KiB, stack within 512 bytes, for the
/// board it was measured on. Otherwise `cargo xtask figures` writes it anew.
fn figures_current(board: Board, log: &str) -> Result<()> {
    let dir = chispa_boards::boards_dir();
    let all = chispa_boards::figures(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(file) = all.iter().find(|f| f.board == board.name()) else {
        return Ok(()); // Another board of the same core was measured.
    };
    let now = crate::figures::from_log(board.cpu(), board.name(), log)?;
    let stale = |what: &str, was: u64, is: u64| {
        format!(
            "{}: {what} {is}, but measured.toml says {was}: run `cargo xtask figures`",
            board.name()
        )
    };
    let (a, b) = (file.instructions_per_token, now.instructions_per_token);
    ensure!(a.abs_diff(b) * 100 <= 3 * a, stale("instructions/token", a, b));
    ensure!(
        file.code_bytes.abs_diff(now.code_bytes) <= 8192,
        stale("code bytes", file.code_bytes, now.code_bytes)
    );
    ensure!(
        file.stack_bytes.abs_diff(now.stack_bytes) <= 512,
        stale("stack bytes", file.stack_bytes, now.stack_bytes)
    );
    Ok(())
}

/// `chispa plan` says the same arena as the firmware, and a flash total within 8 KiB.
fn plan_agrees(board: Board, log: &str) -> Result<()> {
    let model = default_chispa()?;
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root())
        .args(["run", "--quiet", "--release", "-p", "chispa-runner", "--", "plan"])
        .arg(&model)
        .args(["--board", board.name(), "--kv", "int8"])
        .output()
        .context("cannot run chispa plan")?;
    ensure!(out.status.success(), "chispa plan failed for {}", board.name());
    let plan = String::from_utf8_lossy(&out.stdout);
    let number = |s: Option<String>| -> Option<u64> {
        s?.split_whitespace().next()?.replace(',', "").parse().ok()
    };
    let plan_arena = number(field(&plan, "arena: "));
    let fw_arena = number(field(log, "arena: "));
    ensure!(
        plan_arena.is_some() && plan_arena == fw_arena,
        "{}: plan arena {plan_arena:?} != firmware {fw_arena:?}",
        board.name()
    );
    let plan_flash = plan
        .lines()
        .skip_while(|l| !l.starts_with("flash ("))
        .find(|l| l.trim_start().starts_with("total"))
        .and_then(|l| number(Some(l.trim_start().trim_start_matches("total").to_string())));
    let fw_flash = number(field(log, "flash: "));
    match (plan_flash, fw_flash) {
        (Some(p), Some(f)) if p.abs_diff(f) <= 8192 => {
            println!("{}: plan flash {p} B, firmware {f} B; arena {fw_arena:?} B", board.name());
            Ok(())
        }
        _ => bail!("{}: plan flash {plan_flash:?} vs firmware {fw_flash:?}", board.name()),
    }
}

/// The RP2350-sized QEMU board: Cortex-M33 (`mps2-an505`), the model in a 16 MiB region,
/// RAM shrunk to 520 KiB.
pub(crate) const BUDGET_BOARD: &str = "qemu-m33-16m";
/// The RAM budget (KiB) and the contexts that fit it with stories15M's shape.
pub(crate) const BUDGET_RAM_KIB: u32 = 520;
/// The longest context stories15M's shape fits in [`BUDGET_RAM_KIB`] with an int8 (or k10v7:
/// the same bytes) KV cache, by `chispa plan --ram-kib 520`.
pub(crate) const BUDGET_CONTEXT: usize = 36;
const BUDGET_STEPS: usize = 8;

/// stories15M's shape (random weights, 16.5 MB) on [`BUDGET_BOARD`] in 520 KiB of RAM, int8
/// KV: the same ids, text and digest as the desktop, the stack within its reserve and
/// `chispa plan`'s instructions per token within 15 %; returns the log.
fn budget_stories15m(kv: Kv, context: usize) -> Result<String> {
    let board = crate::board(BUDGET_BOARD)?;
    let model = crate::costs::stories15m()?;
    let mut fw = firmware_kv(board, BUDGET_STEPS, context, Some(BUDGET_RAM_KIB), kv);
    fw.model = Some(model.clone());
    let r = exec_qemu(&fw, true)?;
    print!("{}{}", r.console, r.log);
    ensure!(r.code == 0, "{}: exit status {}", board.name(), r.code);
    let s =
        Sampling { prompt: PROMPT, steps: BUDGET_STEPS, temperature: 0.0, top_p: 0.9, seed: 42 };
    let desk = desktop_run_with(&model, &[], &s, context, crate::costs::kv_name(kv))?;
    compare(board, &single(&r)?, &desk)?;
    stack_within_budget(&r.log)?;
    let line = crate::costs::plan_within_tolerance(board, "stories15M", &model, kv, &r.log)?;
    println!("{line}");
    Ok(r.log)
}

pub(crate) fn test_qemu(boards: &[Board], steps: usize, real_boards: bool) -> Result<()> {
    let mut failures = 0usize;
    let mut passed = 0usize;
    let mut check = |what: &str, r: Result<()>| match r {
        Ok(()) => {
            println!("ok: {what}");
            passed += 1;
        }
        Err(e) => {
            println!("FAILED: {what}: {e:#}");
            failures += 1;
        }
    };

    // The kernels of each board against the scalar code on the board itself (Helium's cannot
    // run anywhere else), including the inputs that take them off their fast paths.
    for &board in boards {
        let r = (|| {
            let mut fw = firmware(board, steps, 0, None);
            fw.selftest = true;
            let (code, log) = run_qemu(&fw, true)?;
            print!("{log}");
            ensure!(code == 0, "{}: kernel self-test exit status {code}", board.name());
            ensure!(log.contains(", 0 failures"), "{}: no self-test report", board.name());
            Ok(())
        })();
        check(&format!("{} kernels = scalar code (self-test)", board.name()), r);
    }

    let full = desktop(steps, 0)?;
    println!("desktop (context 512, int8 KV): {} ids, digest {}", full.ids.len(), full.digest);
    for &board in boards {
        let r = (|| {
            let r = exec_qemu(&firmware(board, steps, 0, Some(200)), true)?;
            let (code, log) = (r.code, &r.log);
            print!("{}{log}", r.console);
            ensure!(code == 0, "{}: exit status {code}", board.name());
            compare(board, &single(&r)?, &full)?;
            stack_within_budget(log)?;
            plan_agrees(board, log)?;
            figures_current(board, log)
        })();
        check(
            &format!(
                "{} = desktop, context 512 in 200 KiB; plan and measured.toml agree",
                board.name()
            ),
            r,
        );
    }

    // The same bytes of KV cache as int8, packed 10-bit keys and 7-bit values.
    let packed = desktop_kv(steps, 0, "k10v7")?;
    println!("desktop (context 512, k10v7 KV): {} ids, digest {}", packed.ids.len(), packed.digest);
    for &board in boards {
        let r = (|| {
            let fw = firmware_kv(board, steps, 0, Some(200), Kv::K10v7);
            let r = exec_qemu(&fw, true)?;
            let (code, log) = (r.code, &r.log);
            print!("{}{log}", r.console);
            ensure!(code == 0, "{}: exit status {code}", board.name());
            compare(board, &single(&r)?, &packed)?;
            stack_within_budget(log)
        })();
        check(&format!("{} = desktop, k10v7 KV, context 512 in 200 KiB", board.name()), r);
    }

    // The plan's speed: its instructions per token (the model's counts times the fitted
    // costs) against fresh runs of model × KV combinations the costs were not fitted to.
    // Every Arm QEMU core has fitted costs; a core `fit-costs` has not run on yet (RISC-V)
    // gets no speed estimate from the plan, and nothing to check here.
    for &board in boards {
        if chispa_runner::cost::core_costs(board.cpu()).is_none() {
            let r = if board.cpu().starts_with("cortex-m") {
                Err(anyhow::anyhow!(
                    "no fitted costs for {}: run `cargo xtask fit-costs`",
                    board.cpu()
                ))
            } else {
                println!(
                    "{}: no fitted costs for {} (chispa plan gives no speed estimate)",
                    board.name(),
                    board.cpu()
                );
                Ok(())
            };
            check(&format!("{}: fitted costs (required for Arm cores)", board.name()), r);
            continue;
        }
        let r = crate::costs::validate(board).map(|lines| {
            for l in lines {
                println!("{l}");
            }
        });
        check(
            &format!(
                "{}: chispa plan's instructions/token within {:.0} % of QEMU on {} model × KV combinations outside the fit",
                board.name(),
                crate::costs::TOLERANCE * 100.0,
                crate::costs::VALIDATE.len()
            ),
            r,
        );
    }

    // A plan that does not fit is reported in the plan's words before anything is linked.
    let r = (|| {
        let f411 = crate::board("stm32f411")?;
        match crate::build(&firmware(f411, 4, 0, None)) {
            Ok(elf) => bail!(
                "stories260K with a 512-token int8 cache built for 128 KiB: {}",
                elf.display()
            ),
            Err(e) => {
                let msg = format!("{e:#}");
                ensure!(
                    msg.contains("not building: the plan does not fit")
                        && msg.contains("DOES NOT FIT"),
                    "not the plan's report: {msg}"
                );
                Ok(())
            }
        }
    })();
    check("stm32f411, context 512: refused before linking with the plan's report", r);

    // stories15M's shape on an RP2350-sized budget: 16 MiB for the model, 520 KiB of RAM.
    let r = budget_stories15m(Kv::Int8, BUDGET_CONTEXT).map(|_| ());
    check(
        &format!(
            "{BUDGET_BOARD}: stories15M shape (16.5 MB) = desktop, int8 KV, context {BUDGET_CONTEXT} in {BUDGET_RAM_KIB} KiB; plan within 15 %"
        ),
        r,
    );

    let m4 = crate::board("qemu-m4")?;
    let r = two_prompts(m4, steps);
    check("qemu-m4: two prompts typed at run time (greedy; sampled) = desktop", r);
    // The probe-rs boards' console, RTT, with `cargo xtask qemu` as the probe (QEMU's gdb stub).
    let r = crate::board("qemu-m4-rtt").and_then(|b| two_prompts(b, steps));
    check("qemu-m4-rtt: two prompts typed over RTT (the probe-rs boards' console) = desktop", r);
    let r = crate::board("qemu-m4-uart").and_then(|b| two_prompts(b, steps));
    check("qemu-m4-uart: two prompts typed over the board's UART = desktop", r);
    let r = chat_prompt(m4);
    check("qemu-m4: a chat model's prompt in its chat prefix and suffix = desktop --chat", r);

    let short = desktop(steps.min(120), 128)?;
    let r = (|| {
        let fw = firmware(m4, steps.min(120), 128, Some(64));
        let r = exec_qemu(&fw, true)?;
        print!("{}{}", r.console, r.log);
        ensure!(r.code == 0, "exit status {}", r.code);
        compare(m4, &single(&r)?, &short)
    })();
    check("qemu-m4 = desktop, context 128 in 64 KiB", r);

    // An int4 model (the default `--dtype int4`: int4 and int8 matrices), a few tokens.
    let r = (|| {
        let model = int4_chispa()?;
        let s = Sampling { prompt: PROMPT, steps: 40, temperature: 0.0, top_p: 0.9, seed: 42 };
        let desk = desktop_run_with(&model, &[], &s, 0, "int8")?;
        println!(
            "desktop int4 (context 512, int8 KV): {} ids, digest {}",
            desk.ids.len(),
            desk.digest
        );
        let mut fw = firmware(m4, s.steps, 0, None);
        fw.model = Some(model);
        let r = exec_qemu(&fw, true)?;
        print!("{}{}", r.console, r.log);
        ensure!(r.code == 0, "exit status {}", r.code);
        compare(m4, &single(&r)?, &desk)
    })();
    check("qemu-m4 = desktop, int4 stories260K, 40 tokens", r);

    let r = (|| {
        let mut fw = firmware(m4, 4, 0, None);
        fw.corrupt_byte = Some(5000);
        let (code, log) = run_qemu(&fw, true)?;
        print!("{log}");
        ensure!(code == 1, "a corrupted model must exit with 1, got {code}");
        ensure!(log.contains("not valid"), "no error message for the corrupted model");
        Ok(())
    })();
    check("corrupted model: error and exit 1", r);

    // The fault handler of each architecture (HardFault on Arm, riscv-rt's exception handler).
    let mut arches: Vec<&str> = Vec::new();
    for &board in boards {
        let arch = board.target().split('-').next().unwrap_or_default();
        let arch = if arch.starts_with("thumb") { "arm" } else { arch };
        if arches.contains(&arch) {
            continue;
        }
        arches.push(arch);
        let r = (|| {
            let mut fw = firmware(board, 4, 0, None);
            fw.fault_test = true;
            let (code, log) = run_qemu(&fw, true)?;
            print!("{log}");
            ensure!(code == 5, "a fault must exit with 5, got {code}");
            ensure!(log.contains("hard fault"), "no message from the fault handler");
            Ok(())
        })();
        check(&format!("{}: fault logged, exit 5", board.name()), r);
    }

    if real_boards {
        let real = crate::all_boards()?.iter().filter(|b| b.qemu.is_none());
        for (board, context) in real.map(|b| (crate::Board(b), b.ci_context)) {
            let r = crate::build(&firmware(board, steps, context, None)).map(|elf| {
                println!("{}: {}", board.name(), elf.display());
            });
            check(&format!("{} builds and fits (context {context})", board.name()), r);
        }
    }
    println!("{passed} passed, {failures} failed");
    if failures > 0 {
        bail!("{failures} firmware check(s) failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two runs: the console's `/set` answers and the end of input hold no text; each run's
    /// text, ids and digest are its own.
    #[test]
    fn runs_split_by_prompt_and_console_marker() {
        let log = "chispa firmware on qemu-m4: ...\nsettings: 200 steps\nprompt: A\nids: [1, 2]\n\
                   digest: 00000000000000aa\nprompt: B\nids: [3]\nids: [4]\ndigest: 00000000000000bb\n";
        let console = "Prompt> settings: steps=200\nPrompt> A b\nc\nPrompt> settings: steps=60\n\
                       Prompt> B d\nPrompt> \n";
        let r = QemuRun { code: 0, log: log.into(), console: console.into() };
        let runs = parse_firmware(&r).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(runs.len(), 2);
        assert_eq!(
            (runs[0].ids.as_slice(), runs[0].text.as_str()),
            ([1u32, 2].as_slice(), "A b\nc\n")
        );
        assert_eq!(
            (runs[1].ids.as_slice(), runs[1].text.as_str()),
            ([3u32, 4].as_slice(), "B d\n")
        );
        assert_eq!(runs[1].digest, "00000000000000bb");
        // The default prompt after the end of input: its text follows the newline.
        let r = QemuRun {
            code: 0,
            log: "prompt: A\nids: [1]\ndigest: 01\n".into(),
            console: "Prompt> settings: x\nPrompt> \nA z\n".into(),
        };
        assert_eq!(single(&r).map(|run| run.text).unwrap_or_default(), "A z\n");
        // A run whose text did not reach the console is an error, not a silent pass.
        let r = QemuRun {
            code: 0,
            log: "prompt: A\nids: [1]\ndigest: 01\n".into(),
            console: "Prompt> \n".into(),
        };
        assert!(parse_firmware(&r).is_err());
    }
}
