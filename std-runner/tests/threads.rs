//! Rows split across threads give the one-thread bits, int8 and int4, for every supported
//! backend and for
//! shapes with a short last group and a row count that is not a multiple of the blocking.
//! (Its own test binary: the thread count and backend are process-wide.)

use chispa_core::kernels::{self, Backend, ALL_BACKENDS};
use chispa_runner::threads::{set_threads, threaded, MIN_PARALLEL_MACS};

fn data(n: usize, seed: u64) -> Vec<u64> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        })
        .collect()
}

#[test]
fn threads_give_the_one_thread_bits() {
    for &(rows, cols, group) in
        &[(4099usize, 1025usize, 32usize), (4099, 1024, 32), (5003, 840, 16), (1027, 4100, 256)]
    {
        assert!(rows * cols >= MIN_PARALLEL_MACS, "the shape must be large enough to split");
        let groups = cols.div_ceil(group);
        let w: Vec<i8> = data(rows * cols, 1).iter().map(|v| (v >> 56) as u8 as i8).collect();
        let rs: Vec<f32> = data(rows, 2).iter().map(|v| (v >> 40) as f32 * 1e-9).collect();
        let mults: Vec<u8> = data(rows * groups, 4).iter().map(|v| (v >> 56) as u8).collect();
        let xq: Vec<i16> = data(cols, 3).iter().map(|v| (v >> 48) as u16 as i16).collect();
        let m = kernels::I8Matrix { q: &w, row_scales: &rs, mults: &mults, cols, group };
        // The same weights' low nibbles as int4 (a row of `cols.div_ceil(2)` bytes).
        let rb = cols.div_ceil(2);
        let q4: Vec<u8> = (0..rows * rb)
            .map(|k| {
                let (r, b) = (k / rb, k % rb);
                let at = |j: usize| if j < cols { w[r * cols + j] as u8 & 0x0f } else { 0 };
                at(2 * b) | at(2 * b + 1) << 4
            })
            .collect();
        let m4 = kernels::I4Matrix { q: &q4, row_scales: &rs, mults: &mults, cols, group };
        for b in ALL_BACKENDS.iter().copied().filter(|b| b.is_supported()) {
            let mut want = vec![0f32; rows];
            Backend::Scalar.kernels().matvec_i8(&mut want, &m, &xq, 0.03);
            let mut want4 = vec![0f32; rows];
            Backend::Scalar.kernels().matvec_i4(&mut want4, &m4, &xq, 0.03);
            for n in [1usize, 2, 3, 5] {
                set_threads(n).expect("start the thread pool");
                let mut got4 = vec![f32::NAN; rows];
                threaded(b.kernels()).matvec_i4(&mut got4, &m4, &xq, 0.03);
                let gb: Vec<u32> = got4.iter().map(|v| v.to_bits()).collect();
                let wb: Vec<u32> = want4.iter().map(|v| v.to_bits()).collect();
                assert_eq!(
                    gb,
                    wb,
                    "int4, {n} threads, backend {}, {rows}x{cols}/{group}",
                    b.name()
                );
                let mut got = vec![f32::NAN; rows];
                threaded(b.kernels()).matvec_i8(&mut got, &m, &xq, 0.03);
                let gb: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                let wb: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
                assert_eq!(gb, wb, "{} threads, backend {}, {rows}x{cols}/{group}", n, b.name());
            }
            set_threads(1).expect("one thread");
        }
    }
}
