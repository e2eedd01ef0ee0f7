//! `chispa plan`'s board table agrees with the firmware's memory maps
//! (`firmware/memory/<board>.x`), and the plan's arena is what a session takes.

use std::path::Path;

use chispa_runner::boards::{core_figures, BOARDS};

fn parse_size(s: &str) -> u64 {
    let s = s.trim().trim_end_matches(',');
    if let Some(k) = s.strip_suffix('K') {
        k.parse::<u64>().expect("size") * 1024
    } else if let Some(m) = s.strip_suffix('M') {
        m.parse::<u64>().expect("size") * 1024 * 1024
    } else if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(&h.replace('_', ""), 16).expect("hex")
    } else {
        s.parse().expect("number")
    }
}

/// (ORIGIN, LENGTH) of a region in a memory.x.
fn region(text: &str, name: &str) -> (u64, u64) {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(name) && l.contains("ORIGIN"))
        .unwrap_or_else(|| panic!("no {name} region"));
    let origin = line.split("ORIGIN =").nth(1).expect("ORIGIN").split(',').next().expect("o");
    let length = line.split("LENGTH =").nth(1).expect("LENGTH");
    (parse_size(origin), parse_size(length))
}

#[test]
fn board_table_matches_firmware_memory_maps() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/memory");
    let mut files = std::fs::read_dir(&dir).expect("firmware/memory").count();
    for b in BOARDS {
        let text = std::fs::read_to_string(dir.join(format!("{}.x", b.name))).expect("memory.x");
        assert_eq!(region(&text, "FLASH"), b.flash, "{}: FLASH", b.name);
        assert_eq!(region(&text, "RAM"), b.ram, "{}: RAM", b.name);
        assert!(b.clock_hz > 0);
        if b.qemu {
            assert!(core_figures(b.core).is_some(), "{}: no QEMU figures", b.name);
        }
        files -= 1;
    }
    assert_eq!(files, 0, "a firmware memory map without a board in the table");
}
