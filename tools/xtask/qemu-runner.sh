#!/usr/bin/env bash
# Cargo runner for the firmware's QEMU boards: qemu-runner.sh BOARD ELF.
# Runs QEMU (always under a timeout) and decodes the defmt log; the status is QEMU's, which
# is the firmware's semihosting exit code.
set -euo pipefail
board=$1
elf=$2
case "$board" in
  qemu-m4) machine=(-M mps2-an386 -cpu cortex-m4) ;;
  qemu-m33) machine=(-M mps2-an505 -cpu cortex-m33) ;;
  qemu-m55) machine=(-M mps3-an547 -cpu cortex-m55) ;;
  *) echo "qemu-runner.sh: unknown board $board" >&2; exit 2 ;;
esac
timeout "${CHISPA_QEMU_TIMEOUT:-600}" qemu-system-arm "${machine[@]}" -nographic -monitor none \
  -serial none -semihosting-config enable=on,target=native \
  -icount shift=0,align=off,sleep=off -kernel "$elf" | defmt-print -e "$elf"
