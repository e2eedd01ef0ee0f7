//! The int8 matmul per backend and thread count, in the shapes of stories110M's matrices:
//! `cargo bench -p chispa-runner --bench kernels`. Throughput is reported in elements = MACs
//! (GMAC/s; ×2 for GOP/s) and, in a second group, in bytes of weights read per second. A
//! third group is the yardstick: plain reads of 256 MiB (a sum of u64 words, one and two
//! threads), the machine's read bandwidth from DRAM. A fourth: one head's f32 attention
//! (scores and weighted sum) per backend.

use chispa_core::kernels::{self, Backend, HeadRows, ALL_BACKENDS};
use chispa_runner::threads::{set_threads, threaded};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

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
            let rs = vec![0.0001f32; rows];
            let mults = vec![100u8; rows * groups];
            let xq: Vec<i16> = rand_i8(cols, 2).iter().map(|v| i16::from(*v) * 200).collect();
            let m = kernels::I8Matrix { q: &w, row_scales: &rs, mults: &mults, cols, group };
            let bytes = rows * cols + rows * (4 + groups);
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
                        set_threads(threads).expect("start the thread pool");
                        let k = threaded(b.kernels());
                        bench.iter(|| k.matvec_i8(&mut out, &m, &xq, 0.02));
                        set_threads(1).expect("one thread");
                    });
                }
            }
        }
        g.finish();
    }
}

/// Σ of the words, four independent sums (the loop vectorises; the sum keeps it from being
/// optimised away).
fn sum_words(v: &[u64]) -> u64 {
    let mut acc = [0u64; 4];
    for c in v.chunks_exact(4) {
        for (a, x) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(*x);
        }
    }
    acc.iter().fold(0, |s, a| s.wrapping_add(*a))
}

fn bandwidth(c: &mut Criterion) {
    let words = 256 << 17; // 256 MiB of u64
    let v: Vec<u64> = (0..words as u64).collect();
    let mut g = c.benchmark_group("DRAM read bytes/s");
    g.sample_size(10);
    g.throughput(Throughput::Bytes((words * 8) as u64));
    g.bench_function("1t/256MiB", |b| b.iter(|| std::hint::black_box(sum_words(&v))));
    g.bench_function("2t/256MiB", |b| {
        b.iter(|| {
            let (lo, hi) = v.split_at(words / 2);
            let (a, s) = std::thread::scope(|s| {
                let h = s.spawn(|| sum_words(hi));
                (sum_words(lo), h.join())
            });
            std::hint::black_box(a.wrapping_add(s.unwrap_or(0)))
        })
    });
    g.finish();
}

/// One head's attention over f32 rows (stories110M: head 64 of a 768-wide row, 256
/// positions), scores then the weighted sum of values, per backend; elements = positions.
fn attention(c: &mut Criterion) {
    let (n, row, hs) = (256usize, 768usize, 64usize);
    let rows: Vec<f32> = rand_i8(n * row, 3).iter().map(|v| f32::from(*v) / 64.0).collect();
    let q: Vec<f32> = rand_i8(hs, 4).iter().map(|v| f32::from(*v) / 64.0).collect();
    let mut att = vec![0f32; n];
    let mut out = vec![0f32; hs];
    let mut g = c.benchmark_group("attention f32 positions/s");
    g.throughput(Throughput::Elements(n as u64));
    for b in ALL_BACKENDS.iter().copied().filter(|b| b.is_supported()) {
        g.bench_function(BenchmarkId::new(b.name(), "head 64 x 256"), |bench| {
            let (k, kv) =
                (b.kernels(), HeadRows { rows: &rows, row_len: row, off: 128, scales: &[] });
            bench.iter(|| {
                k.scores_f32(kv, &q, 8.0, &mut att);
                k.mix_f32(kv, &att, &mut out);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bandwidth, attention);
criterion_main!(benches);
