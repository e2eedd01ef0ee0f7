//! The int8 matmul per backend and thread count, in the shapes of stories110M's matrices:
//! `cargo bench -p chispa-runner --bench kernels`. Throughput is reported in elements = MACs
//! (GMAC/s; ×2 for GOP/s) and, in a second group, in bytes of weights read per second.

use chispa_core::kernels::{self, Backend, ALL_BACKENDS};
use chispa_runner::threads::set_threads;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::f16;

fn rand_i8(n: usize, mut s: u64) -> Vec<i8> {
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 56) as u8 as i8
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    // (name, rows, cols): wq/wk/wv/wo, w1/w3, w2 and the classifier of stories110M; group 32.
    let shapes = [
        ("768x768", 768, 768),
        ("2048x768", 2048, 768),
        ("768x2048", 768, 2048),
        ("32000x768", 32000, 768),
    ];
    let group = 32;
    for (unit, name) in [(false, "matvec_i8 MAC/s"), (true, "matvec_i8 weight bytes/s")] {
        let mut g = c.benchmark_group(name);
        g.sample_size(20);
        for &(shape, rows, cols) in &shapes {
            let groups = cols / group;
            let w = rand_i8(rows * cols, 1);
            let ws = vec![f16::from_f32(0.01); rows * groups];
            let xq = rand_i8(cols, 2);
            let xs = vec![0.02f32; groups];
            let bytes = rows * cols + rows * groups * 2;
            g.throughput(if unit {
                Throughput::Bytes(bytes as u64)
            } else {
                Throughput::Elements((rows * cols) as u64)
            });
            let mut out = vec![0f32; rows];
            for b in ALL_BACKENDS.iter().copied().filter(|b| b.is_supported()) {
                for threads in [1usize, 2] {
                    if b == Backend::Scalar && threads > 1 {
                        continue;
                    }
                    let id = BenchmarkId::new(format!("{}/{}t", b.name(), threads), shape);
                    g.bench_function(id, |bench| {
                        if kernels::set_backend(b).is_err() {
                            return;
                        }
                        set_threads(threads).expect("start the thread pool");
                        bench.iter(|| kernels::matvec_i8(&mut out, &w, &ws, &xq, &xs, cols, group));
                        set_threads(1).expect("one thread");
                    });
                }
            }
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
