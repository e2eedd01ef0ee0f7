#!/usr/bin/env bash
# Cargo runner for the firmware's QEMU boards: qemu-runner.sh ELF, for the board in
# $CHISPA_BOARD (default qemu-m4). The QEMU program, machine, CPU and extra flags come from
# the board's folder, firmware/boards/<board>/board.toml ([qemu] binary, machine, cpu, args).
# Runs QEMU (always under a
# timeout) and decodes the defmt log; the status is QEMU's, which is the firmware's
# semihosting exit code. The console (prompts) is this terminal: stdin and stderr.
set -euo pipefail
board=${CHISPA_BOARD:-qemu-m4}
elf=$1
toml="$(dirname "$0")/../../firmware/boards/$board/board.toml"
[ -f "$toml" ] || { echo "qemu-runner.sh: no board $board ($toml)" >&2; exit 2; }
field() { sed -n "/^\[qemu\]/,/^\[/s/^$1 *= *\"\(.*\)\".*/\1/p" "$toml"; }
machine=$(field machine)
cpu=$(field cpu)
binary=$(field binary)
args=$(field args)
[ -n "$machine" ] || { echo "qemu-runner.sh: $board is not a QEMU board" >&2; exit 2; }
# shellcheck disable=SC2086 # args: flags split at spaces, as board.toml documents
timeout "${CHISPA_QEMU_TIMEOUT:-600}" "$binary" -M "$machine" -cpu "$cpu" $args -nographic \
  -monitor none -serial none -semihosting-config enable=on,target=native \
  -icount shift=0,align=off,sleep=off -kernel "$elf" | defmt-print -e "$elf"
