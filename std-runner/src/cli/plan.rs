//! `chispa plan`: will this model run on that board? Flash and RAM, margins, a speed estimate.

use anyhow::{bail, Result};
use chispa_core::SessionOptions;
use chispa_runner::boards::{self, core_figures, Board, BOARDS, STACK_RESERVE};
use chispa_runner::cost::{self, Estimate};
use chispa_runner::load::Loaded;
use chispa_tools::outln;

fn kib(b: u64) -> String {
    format!("{:.1} KiB", b as f64 / 1024.0)
}

fn line(what: &str, bytes: u64, note: &str) -> Result<()> {
    outln!("  {what:<34} {bytes:>10} B {:>12}  {note}", kib(bytes))
}

/// `fits, X free (P %)` or `DOES NOT FIT: X over`.
fn margin(have: u64, need: u64) -> String {
    if need <= have {
        format!(
            "fits, {} free ({:.0} %)",
            kib(have - need),
            100.0 * (have - need) as f64 / have as f64
        )
    } else {
        format!("DOES NOT FIT: {} over", kib(need - have))
    }
}

/// `1,234,567`.
fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The speed section: instructions per token from the model's counts and the core's fitted
/// costs, broken down, at the first position, over a generation and at the context's end.
fn speed(
    b: &Board,
    model: &chispa_core::Model<'_>,
    options: &SessionOptions,
    context: usize,
    steps: Option<usize>,
) -> Result<()> {
    let Some(costs) = cost::core_costs(b.core).filter(|c| !c.costs.is_empty()) else {
        return outln!(
            "speed estimate: none (no fitted costs for {} in firmware/boards/costs.toml)",
            b.core
        );
    };
    let counts = cost::counts(model, options.kv, b.core);
    let e = Estimate::new(&counts, costs);
    let mhz = b.clock_hz as f64 / 1e6;
    outln!(
        "speed estimate ({} costs fitted under QEMU on {}, firmware/boards/costs.toml; instructions, not cycles: tokens/s assume one instruction per cycle at {mhz:.0} MHz):",
        b.core, costs.board
    )?;
    outln!(
        "  instructions/token with n cached positions = {} + {} · n",
        thousands(e.at(0.0)),
        thousands(e.attention_per_position)
    )?;
    let macs = model.config().matmul_macs_per_token();
    outln!("    matmul     {:>12}   ({} MACs)", thousands(e.matmul), thousands(macs as f64))?;
    outln!(
        "    attention  {:>12} + {} · n   (KV {})",
        thousands(e.attention_fixed),
        thousands(e.attention_per_position),
        options.kv.name()
    )?;
    outln!(
        "    other      {:>12}   (quantize, norms, activations, RoPE, sampling, overheads)",
        thousands(e.other)
    )?;
    if !e.missing.is_empty() {
        outln!("  not in the estimate (no fitted cost on {}): {}", b.core, e.missing.join(", "))?;
    }
    let row = |what: String, instr: f64, n: f64| {
        outln!(
            "  {what:<46} {:>12} instructions ({:>4.1} % attention)  {:>8.2} tokens/s",
            thousands(instr),
            100.0 * e.attention_at(n) / instr.max(1.0),
            b.clock_hz as f64 / instr.max(1.0)
        )
    };
    row("first token (n = 1)".into(), e.at(1.0), 1.0)?;
    let n = steps.unwrap_or(context).clamp(1, context.max(1));
    let mean_n = cost::mean_attended(1, n);
    row(format!("mean over {n} tokens from position 0 (mean n = {mean_n})"), e.at(mean_n), mean_n)?;
    row(format!("last token of the context (n = {context})"), e.at(context as f64), context as f64)
}

/// Prints the plan; `Ok(false)` when it does not fit (the caller exits 1). `steps`: the
/// generation the mean speed is given for (default: one filling the context); `ram_kib`:
/// the RAM to plan for instead of the board's.
pub(crate) fn cmd_plan(
    loaded: &Loaded,
    board: &str,
    options: SessionOptions,
    steps: Option<usize>,
    ram_kib: Option<u64>,
) -> Result<bool> {
    let Some(b) = boards::board(board) else {
        let names: Vec<&str> = BOARDS.iter().map(|b| b.name).collect();
        bail!("unknown board {board:?}; known: {}", names.join(", "));
    };
    let model = loaded.bytes.parse(&loaded.name)?;
    let plan = model.plan(&options)?;
    // `Model::plan` is exact (what `Session::new` carves): nothing is allocated here.

    let file = model.bytes().len() as u64;
    let weights: u64 = (0..model.header().n_tensors as usize)
        .filter_map(|i| model.tensor_entry(i))
        .map(|e| u64::from(e.data_len) + u64::from(e.scales_len))
        .sum();
    let fig = core_figures(b.core);
    let code = fig.map_or(64 * 1024, |f| f.code_bytes);
    let stack = STACK_RESERVE.max(fig.map_or(0, |f| f.stack_bytes));

    outln!("{} — {} ({}, {} MHz)", b.name, b.description, b.core, b.clock_hz / 1_000_000)?;
    outln!("model {} | context {} | KV cache {}", loaded.name, plan.context, plan.kv.name())?;
    // The model in flash with the code, or in the board's own model region.
    let (flash, model_fits) = match b.model_region {
        None => {
            outln!("flash ({} at {:#010x}):", kib(b.flash.1), b.flash.0)?;
            line("weights", weights, "int8/f32 tensors + scales")?;
            line("tokenizer, header, directory", file - weights, "")?;
            line("code (measured firmware)", code, "estimate for this core")?;
            line("total", file + code, "")?;
            (file + code, true)
        }
        Some((origin, len)) => {
            outln!("model region ({} at {:#010x}):", kib(len), origin)?;
            line("weights", weights, "int8/f32 tensors + scales")?;
            line("tokenizer, header, directory", file - weights, "")?;
            line("total", file, "")?;
            outln!("model region: {}", margin(len, file))?;
            outln!("flash ({} at {:#010x}):", kib(b.flash.1), b.flash.0)?;
            line("code (measured firmware)", code, "estimate for this core")?;
            line("total", code, "")?;
            (code, file <= len)
        }
    };
    let ram_size = ram_kib.map_or(b.ram.1, |k| k * 1024);
    outln!("RAM ({} at {:#010x}):", kib(ram_size), b.ram.0)?;
    line("KV cache", plan.kv_cache_bytes as u64, "")?;
    line("activations, logits, sampler", plan.scratch_bytes as u64, "")?;
    line("stack", stack, "reserve the firmware keeps (measured high-water below it)")?;
    let ram = plan.arena_bytes as u64 + stack;
    line("total (arena + stack)", ram, "")?;
    outln!("arena: {} bytes (exact: Model::plan, what the firmware allocates)", plan.arena_bytes)?;

    let fits_flash = flash <= b.flash.1 && model_fits;
    let fits_ram = ram <= ram_size;
    outln!("flash: {}", margin(b.flash.1, flash))?;
    outln!("RAM:   {}", margin(ram_size, ram))?;
    speed(b, &model, &options, plan.context, steps)?;
    Ok(fits_flash && fits_ram)
}
