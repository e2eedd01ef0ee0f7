//! `chispa plan`'s board table is the board folders (`firmware/boards/<name>/board.toml` and
//! `memory.x`, read by `chispa-boards` as the firmware's build script reads them), and every
//! QEMU core has measured figures.

use chispa_runner::boards::{core_figures, BOARDS};

#[test]
fn board_table_is_the_board_folders() {
    let dir = chispa_boards::boards_dir();
    let folders = chispa_boards::all(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(!folders.is_empty(), "no board folders in {}", dir.display());
    assert_eq!(BOARDS.len(), folders.len(), "a board folder missing from the table");
    for (b, f) in BOARDS.iter().zip(&folders) {
        assert_eq!(b.name, f.name);
        assert_eq!(b.core, f.core, "{}: core", b.name);
        assert_eq!(b.flash, f.flash, "{}: FLASH", b.name);
        assert_eq!(b.ram, f.ram, "{}: RAM", b.name);
        assert_eq!(b.qemu, f.qemu.is_some(), "{}: QEMU", b.name);
        assert!(b.clock_hz > 0 && b.flash.1 > 0 && b.ram.1 > 0, "{}", b.name);
        if b.qemu {
            assert!(core_figures(b.core).is_some(), "{}: no QEMU figures", b.name);
        }
    }
    // The real boards' regions as their memory.x files give them (a known one, by value).
    let rp = BOARDS.iter().find(|b| b.name == "rp2350").expect("rp2350");
    assert_eq!((rp.flash, rp.ram), ((0x1000_0000, 4 << 20), (0x2000_0000, 512 << 10)));
}
