//! `chispa plan`'s board table and measured figures, generated from the board folders
//! (`firmware/boards/<name>/board.toml` + `memory.x`), `firmware/boards/measured.toml` and
//! the fitted costs, `firmware/boards/costs.toml`.

use std::path::PathBuf;

fn main() {
    let dir = chispa_boards::boards_dir();
    println!("cargo::rerun-if-changed={}", dir.display());
    let boards = chispa_boards::all(&dir).unwrap_or_else(|e| fail(&e.to_string()));
    for b in &boards {
        println!("cargo::rerun-if-changed={}", dir.join(&b.name).join("board.toml").display());
        println!("cargo::rerun-if-changed={}", b.memory_x.display());
    }
    println!("cargo::rerun-if-changed={}", chispa_boards::figures_path(&dir).display());
    let figures = chispa_boards::figures(&dir).unwrap_or_else(|e| fail(&e.to_string()));

    let mut s = String::from(
        "/// Every board folder, QEMU boards first.\npub const BOARDS: &[Board] = &[\n",
    );
    for b in &boards {
        s.push_str(&format!(
            "    Board {{ name: {:?}, description: {:?}, core: {:?}, clock_hz: {}, flash: ({:#x}, {}), ram: ({:#x}, {}), model_region: {:?}, qemu: {} }},\n",
            b.name, b.description, b.core, b.clock_hz, b.flash.0, b.flash.1, b.ram.0, b.ram.1, b.model_region, b.qemu.is_some()
        ));
    }
    s.push_str("];\n\n/// Measured per core (`firmware/boards/measured.toml`).\npub const CORES: &[CoreFigures] = &[\n");
    for f in &figures {
        s.push_str(&format!(
            "    CoreFigures {{ core: {:?}, board: {:?}, instructions_per_token: {}, code_bytes: {}, stack_bytes: {} }},\n",
            f.core, f.board, f.instructions_per_token, f.code_bytes, f.stack_bytes
        ));
    }
    s.push_str("];\n");
    println!("cargo::rerun-if-changed={}", chispa_boards::costs_path(&dir).display());
    let costs = chispa_boards::costs(&dir).unwrap_or_else(|e| fail(&e.to_string()));
    let mut c = String::from(
        "/// Fitted per core (`firmware/boards/costs.toml`, `cargo xtask fit-costs`).\npub const COSTS: &[CoreCosts] = &[\n",
    );
    for k in &costs {
        let list: Vec<String> = k.costs.iter().map(|(n, v)| format!("({n:?}, {v:?})")).collect();
        c.push_str(&format!(
            "    CoreCosts {{ core: {:?}, board: {:?}, costs: &[{}] }},\n",
            k.core,
            k.board,
            list.join(", ")
        ));
    }
    c.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| fail("no OUT_DIR")));
    std::fs::write(out.join("boards.rs"), s).unwrap_or_else(|e| fail(&e.to_string()));
    std::fs::write(out.join("costs.rs"), c).unwrap_or_else(|e| fail(&e.to_string()));
}

fn fail(msg: &str) -> ! {
    eprintln!("chispa-runner build: {msg}");
    std::process::exit(1)
}
