//! `chispa plan`: will this model run on that board? Flash and RAM, margins, a speed estimate.

use anyhow::{bail, Result};
use chispa_core::SessionOptions;
use chispa_runner::boards::{self, core_figures, BOARDS, STACK_RESERVE};
use chispa_runner::load::Loaded;
use chispa_tools::outln;

fn kib(b: u64) -> String {
    format!("{:.1} KiB", b as f64 / 1024.0)
}

fn line(what: &str, bytes: u64, note: &str) -> Result<()> {
    outln!("  {what:<34} {bytes:>10} B {:>12}  {note}", kib(bytes))
}

/// Prints the plan; `Ok(false)` when it does not fit (the caller exits 1).
pub(crate) fn cmd_plan(loaded: &Loaded, board: &str, options: SessionOptions) -> Result<bool> {
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
    outln!("flash ({} at {:#010x}):", kib(b.flash.1), b.flash.0)?;
    line("weights", weights, "int8/f32 tensors + scales")?;
    line("tokenizer, header, directory", file - weights, "")?;
    line("code (measured firmware)", code, "estimate for this core")?;
    let flash = file + code;
    line("total", flash, "")?;
    outln!("RAM ({} at {:#010x}):", kib(b.ram.1), b.ram.0)?;
    line("KV cache", plan.kv_cache_bytes as u64, "")?;
    line("activations, logits, sampler", plan.scratch_bytes as u64, "")?;
    line("stack", stack, "reserve the firmware keeps (measured high-water below it)")?;
    let ram = plan.arena_bytes as u64 + stack;
    line("total (arena + stack)", ram, "")?;
    outln!("arena: {} bytes (exact: Model::plan, what the firmware allocates)", plan.arena_bytes)?;

    let fits_flash = flash <= b.flash.1;
    let fits_ram = ram <= b.ram.1;
    let margin = |have: u64, need: u64| {
        if need <= have {
            format!(
                "fits, {} free ({:.0} %)",
                kib(have - need),
                100.0 * (have - need) as f64 / have as f64
            )
        } else {
            format!("DOES NOT FIT: {} over", kib(need - have))
        }
    };
    outln!("flash: {}", margin(b.flash.1, flash))?;
    outln!("RAM:   {}", margin(b.ram.1, ram))?;
    match fig {
        Some(f) => outln!(
            "speed estimate: {:.1} tokens/s at {} MHz ({} instructions/token measured under QEMU on {}; instructions, not cycles: an estimate)",
            b.clock_hz as f64 / f.instructions_per_token as f64,
            b.clock_hz / 1_000_000,
            f.instructions_per_token,
            f.core
        ),
        None => outln!("speed estimate: none (no QEMU measurement for {})", b.core),
    }?;
    Ok(fits_flash && fits_ram)
}
