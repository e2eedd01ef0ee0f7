//! Rows split across threads give the one-thread bits, for every supported backend and for
//! shapes with a short last group and a row count that is not a multiple of the blocking.
//! (Its own test binary: the thread count and backend are process-wide.)

use chispa_core::kernels::{self, Backend, ALL_BACKENDS};
use chispa_runner::threads::{set_threads, MIN_PARALLEL_MACS};
use half::f16;

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
        &[(4099usize, 1025usize, 32usize), (4099, 1024, 32), (5003, 840, 16), (1027, 4100, 4100)]
    {
        assert!(rows * cols >= MIN_PARALLEL_MACS, "the shape must be large enough to split");
        let groups = cols.div_ceil(group);
        let w: Vec<i8> = data(rows * cols, 1).iter().map(|v| (v >> 56) as u8 as i8).collect();
        let ws: Vec<f16> =
            data(rows * groups, 2).iter().map(|v| f16::from_f32((v >> 40) as f32 * 1e-9)).collect();
        let xq: Vec<i8> = data(cols, 3).iter().map(|v| (v >> 56) as u8 as i8).collect();
        let xs: Vec<f32> = data(groups, 4).iter().map(|v| (v >> 40) as f32 * 1e-8 - 0.08).collect();
        for b in ALL_BACKENDS.iter().copied().filter(|b| b.is_supported()) {
            kernels::set_backend(b).expect("supported");
            let mut want = vec![0f32; rows];
            kernels::matvec_i8_with(Backend::Scalar, &mut want, &w, &ws, &xq, &xs, cols, group);
            for n in [1usize, 2, 3, 5] {
                set_threads(n).expect("start the thread pool");
                let mut got = vec![f32::NAN; rows];
                kernels::matvec_i8(&mut got, &w, &ws, &xq, &xs, cols, group);
                let gb: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                let wb: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
                assert_eq!(gb, wb, "{} threads, backend {}, {rows}x{cols}/{group}", n, b.name());
            }
            set_threads(1).expect("one thread");
        }
    }
}
