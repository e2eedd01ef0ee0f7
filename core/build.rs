//! Selects the Arm kernels from the target: `chispa_dsp` (SXTB16/SMLAD) for Cortex-M4/M7
//! (thumbv7em), ARMv7-A and Cortex-M33/M55/M85 (thumbv8m.main with `-C target-cpu=` one of
//! those), `chispa_mve` (Helium) for Cortex-M55/M85. Plain thumbv8m.main does not promise the
//! DSP extension, so it gets neither without a `target-cpu`. `chispa_fp16` (with `chispa_dsp`):
//! the FPU converts half precision (`VCVTB`), as on the hard-float thumbv7em (FPv4/FPv5) and
//! thumbv8m.main (FPv5) targets, or with `-C target-feature=+fp16` (e.g. ARMv7-A with VFPv4).

use std::env;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(chispa_dsp)");
    println!("cargo::rustc-check-cfg=cfg(chispa_mve)");
    println!("cargo::rustc-check-cfg=cfg(chispa_fp16)");
    println!("cargo::rustc-check-cfg=cfg(chispa_thumb)");
    println!("cargo::rustc-check-cfg=cfg(chispa_vfp)");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let target = env::var("TARGET").unwrap_or_default();
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let features = env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let cpu = flags
        .split('\u{1f}')
        .collect::<Vec<_>>()
        .windows(2)
        .find_map(|w| match (w[0], w[1]) {
            ("-C", v) if v.starts_with("target-cpu=") => Some(v["target-cpu=".len()..].to_string()),
            (v, _) if v.starts_with("-Ctarget-cpu=") => {
                Some(v["-Ctarget-cpu=".len()..].to_string())
            }
            _ => None,
        })
        .unwrap_or_default();
    let has = |f: &str| features.split(',').any(|x| x == f);
    let helium = matches!(cpu.as_str(), "cortex-m55" | "cortex-m85") || has("mve");
    let dsp = target.starts_with("thumbv7em")
        || target.starts_with("armv7")
        || target.starts_with("thumbv7neon")
        || (target.starts_with("thumbv8m.main")
            && (helium || matches!(cpu.as_str(), "cortex-m33" | "cortex-m35p")))
        || has("dsp");
    if dsp {
        println!("cargo::rustc-cfg=chispa_dsp");
    }
    // The assembly row loops are written once and assembled as T32 or A32; module-level
    // assembly sees neither `-C target-cpu` nor the FPU, so it is told both (the CPU on
    // ARMv8-M, whose DSP extension is optional).
    if target.starts_with("thumb") {
        println!("cargo::rustc-cfg=chispa_thumb");
    }
    // The row loops end each row in VFP registers: hard-float targets only.
    if target.ends_with("eabihf") {
        println!("cargo::rustc-cfg=chispa_vfp");
    }
    let mut prelude = Vec::new();
    if target.starts_with("thumbv8m") && dsp && !cpu.is_empty() {
        prelude.push(format!(".cpu {cpu}"));
    }
    if target.ends_with("eabihf") {
        let fpu = if target.starts_with("thumbv7em") {
            "fpv4-sp-d16"
        } else if target.starts_with("thumbv8m") {
            "fpv5-sp-d16"
        } else {
            "vfpv3-d16"
        };
        prelude.push(format!(".fpu {fpu}"));
    }
    println!("cargo::rustc-env=CHISPA_ASM_PRELUDE={}", prelude.join(";"));
    // Half-precision conversions (VCVTB/VCVTT): FPv4 (Cortex-M4F) and FPv5 (M7, M33, M55),
    // i.e. the hard-float thumbv7em and thumbv8m.main targets, or an explicit feature.
    let fp16 = (target.starts_with("thumbv7em") || target.starts_with("thumbv8m.main"))
        && target.ends_with("eabihf")
        || ["fp16", "vfp4", "fp-armv8"].iter().any(|f| has(f) || flags.contains(&format!("+{f}")));
    if dsp && fp16 {
        println!("cargo::rustc-cfg=chispa_fp16");
    }
    if helium && target.starts_with("thumbv8m.main") {
        println!("cargo::rustc-cfg=chispa_mve");
    }
}
