//! bitsandbytes NF4 and FP4: every packed byte, absmax and decoded value of the fixtures in
//! `tests/data/bnb4` (written by scripts/gen_bnb_fixtures.py with bitsandbytes' own
//! `quantize_4bit` / `dequantize_4bit` on the CPU), the fast kernels against the scalar references at
//! every SIMD level and thread count, the error paths, and the error on the real MiniLM layers.
mod common;

use std::path::PathBuf;

use quant::error::QuantError;
use quant::kernels::nf4::{
    bnb4_absmax_len, bnb4_absmax_mean, bnb4_dequantize, bnb4_dequantize_nested,
    bnb4_dequantize_ref, bnb4_nested_absmax, bnb4_nested_len, bnb4_packed_len, bnb4_quantize,
    bnb4_quantize_nested, bnb4_quantize_ref, bnb_dynamic_quantize, dynamic_map, Bnb4Type,
};
use quant::kernels::par::with_threads;
use quant::kernels::simd::{available_levels, with_simd_level};
use quant::kernels::source::Src;

fn read(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/bnb4")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn field<'a>(case: &'a str, key: &str) -> Option<&'a str> {
    let at = case.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = case[at..].trim_start();
    let end = rest.find([',', '\n', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim().trim_matches('"'))
}

fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            a.to_bits() == b.to_bits(),
            "{what}[{i}]: {a:e} but bitsandbytes gives {b:e}"
        );
    }
}

/// `assert_bits` for bitsandbytes' decoded values: FP4 code 8 must decode to -0.0 here, and
/// bitsandbytes gives -0.0 (its native kernel) or +0.0 (its table fallback) depending on the shape.
fn assert_decoded(what: &str, ty: Bnb4Type, codes: &[u8], got: &[f32], want: &[f32]) {
    let code = |i: usize| (codes[i / 2] >> (4 * (1 - i % 2))) & 15;
    let mut want = want.to_vec();
    for (i, w) in want.iter_mut().enumerate() {
        if ty == Bnb4Type::Fp4 && code(i) == 8 {
            assert!(*w == 0.0, "{what}[{i}]: bitsandbytes decodes code 8 to {w}");
            *w = -0.0;
        }
    }
    assert_bits(what, got, &want);
}

fn assert_bytes(what: &str, got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}[{i}]: byte {:#04x} but bitsandbytes gives {:#04x}",
            got[i], want[i]
        );
    }
}

/// A fixture case's source values: as f32, and as raw 16-bit values for the f16 and bf16 cases.
fn load_source(case: &str) -> (Vec<f32>, Vec<u16>) {
    let name = field(case, "name").unwrap();
    let n: usize = field(case, "n").unwrap().parse().unwrap();
    let dtype = field(case, "dtype").unwrap();
    let (f, h): (Vec<f32>, Vec<u16>) = if let Some(w) = field(case, "minilm") {
        (common::read_f32(w)[..n].to_vec(), Vec::new())
    } else if dtype == "f32" {
        (f32s(&read(&format!("{name}.in.f32"))), Vec::new())
    } else {
        let raw = read(&format!("{name}.in.{dtype}"));
        let h: Vec<u16> = raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let f = h
            .iter()
            .map(|&v| match dtype {
                "f16" => half::f16::from_bits(v).to_f32(),
                _ => f32::from_bits(u32::from(v) << 16),
            })
            .collect();
        (f, h)
    };
    assert_eq!(f.len(), n, "{name}");
    (f, h)
}

fn source<'a>(dtype: &str, f: &'a [f32], h: &'a [u16]) -> Src<'a> {
    match dtype {
        "f32" => Src::F32(f),
        "f16" => Src::F16(h),
        _ => Src::Bf16(h),
    }
}

fn manifest_cases() -> Vec<String> {
    let manifest = String::from_utf8(read("manifest.json")).unwrap();
    let body = &manifest[manifest.find("\"cases\"").unwrap()..];
    body.split('{').skip(1).map(str::to_string).collect()
}

#[test]
fn fixtures_are_byte_exact_with_bitsandbytes() {
    let mut checked = 0;
    for case in manifest_cases() {
        let case = case.as_str();
        let name = field(case, "name").unwrap();
        let n: usize = field(case, "n").unwrap().parse().unwrap();
        let bs: usize = field(case, "blocksize").unwrap().parse().unwrap();
        let dtype = field(case, "dtype").unwrap();
        let (f, h) = load_source(case);
        let src = source(dtype, &f, &h);
        for ty in [Bnb4Type::Nf4, Bnb4Type::Fp4] {
            if !case.contains(&format!("\"{}\"", ty.name())) {
                continue;
            }
            let t = ty.name();
            let codes = read(&format!("{name}.{t}.codes.u8"));
            let absmax = f32s(&read(&format!("{name}.{t}.absmax.f32")));
            let deq = f32s(&read(&format!("{name}.{t}.deq.f32")));
            let (nq, na) = (bnb4_packed_len(n), bnb4_absmax_len(n, bs));
            for level in available_levels() {
                for threads in [1, 3] {
                    let (mut q, mut a, mut d) = (vec![0u8; nq], vec![0f32; na], vec![0f32; n]);
                    with_simd_level(level, || {
                        with_threads(threads, || {
                            bnb4_quantize(ty, src, bs, &mut q, &mut a).unwrap();
                            bnb4_dequantize(ty, &q, &a, n, bs, &mut d).unwrap();
                        })
                        .unwrap()
                    })
                    .unwrap();
                    let what = format!("{name} {t} {level:?} {threads}t");
                    assert_bytes(&format!("{what} codes"), &q, &codes);
                    assert_bits(&format!("{what} absmax"), &a, &absmax);
                    assert_decoded(&format!("{what} dequantized"), ty, &q, &d, &deq);
                }
            }
            let (mut q, mut a, mut d) = (vec![0u8; nq], vec![0f32; na], vec![0f32; n]);
            bnb4_quantize_ref(ty, &f, bs, &mut q, &mut a).unwrap();
            assert_bytes(&format!("{name} {t} ref codes"), &q, &codes);
            assert_bits(&format!("{name} {t} ref absmax"), &a, &absmax);
            bnb4_dequantize_ref(ty, &codes, &absmax, n, bs, &mut d).unwrap();
            assert_decoded(&format!("{name} {t} ref dequantized"), ty, &codes, &d, &deq);
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} fixtures");
}

/// Double quantization (`compress_statistics=True`): given the offset bitsandbytes used, every code,
/// 8-bit absmax code, absmax2 and decoded value equals bitsandbytes', at every SIMD level and thread
/// count; the library's own offset (the mean rule) equals the correctly rounded mean the generator
/// computed exactly, and the outputs with it are those of the 8-bit step on `absmax - mean`.
#[test]
fn nested_fixtures_are_byte_exact_with_bitsandbytes() {
    let (mut checked, mut torch_differs) = (0, 0);
    for case in manifest_cases() {
        let case = case.as_str();
        let name = field(case, "name").unwrap();
        let n: usize = field(case, "n").unwrap().parse().unwrap();
        let bs: usize = field(case, "blocksize").unwrap().parse().unwrap();
        let (f, h) = load_source(case);
        let src = source(field(case, "dtype").unwrap(), &f, &h);
        for ty in [Bnb4Type::Nf4, Bnb4Type::Fp4] {
            let t = ty.name();
            let Some(off) = field(case, &format!("offset_{t}")) else {
                continue;
            };
            let offset = f32::from_bits(off.parse().unwrap());
            let mean = f32::from_bits(field(case, &format!("mean_{t}")).unwrap().parse().unwrap());
            let codes = read(&format!("{name}.{t}.codes.u8"));
            let absmax = f32s(&read(&format!("{name}.{t}.absmax.f32")));
            let qabsmax = read(&format!("{name}.{t}.nested.qabsmax.u8"));
            let absmax2 = f32s(&read(&format!("{name}.{t}.nested.absmax2.f32")));
            let deq = f32s(&read(&format!("{name}.{t}.nested.deq.f32")));
            let (nq, na, n2) = (
                bnb4_packed_len(n),
                bnb4_absmax_len(n, bs),
                bnb4_nested_len(n, bs),
            );
            assert_eq!((qabsmax.len(), absmax2.len()), (na, n2), "{name} {t}");
            for level in available_levels() {
                for threads in [1, 3] {
                    let (mut q, mut qa, mut a2, mut d) =
                        (vec![0u8; nq], vec![0u8; na], vec![0f32; n2], vec![0f32; n]);
                    let used = with_simd_level(level, || {
                        with_threads(threads, || {
                            let used = bnb4_quantize_nested(
                                ty,
                                src,
                                bs,
                                Some(offset),
                                &mut q,
                                &mut qa,
                                &mut a2,
                            )
                            .unwrap();
                            bnb4_dequantize_nested(ty, &q, &qa, &a2, used, n, bs, &mut d).unwrap();
                            used
                        })
                        .unwrap()
                    })
                    .unwrap();
                    let what = format!("{name} {t} nested {level:?} {threads}t");
                    assert_eq!(used.to_bits(), offset.to_bits(), "{what}");
                    assert_bytes(&format!("{what} codes"), &q, &codes);
                    assert_bytes(&format!("{what} qabsmax"), &qa, &qabsmax);
                    assert_bits(&format!("{what} absmax2"), &a2, &absmax2);
                    assert_decoded(&format!("{what} dequantized"), ty, &q, &d, &deq);
                }
            }
            // The library's offset: the correctly rounded mean.
            let (mut q, mut qa, mut a2) = (vec![0u8; nq], vec![0u8; na], vec![0f32; n2]);
            let used = bnb4_quantize_nested(ty, src, bs, None, &mut q, &mut qa, &mut a2).unwrap();
            assert_eq!(used.to_bits(), mean.to_bits(), "{name} {t} mean");
            assert_eq!(bnb4_absmax_mean(&absmax).unwrap().to_bits(), mean.to_bits());
            let diff: Vec<f32> = absmax.iter().map(|&a| a - mean).collect();
            let (mut qd, mut ad) = (vec![0u8; na], vec![0f32; n2]);
            bnb_dynamic_quantize(&diff, &mut qd, &mut ad).unwrap();
            assert_bytes(&format!("{name} {t} mean qabsmax"), &qa, &qd);
            assert_bits(&format!("{name} {t} mean absmax2"), &a2, &ad);
            assert_bytes(&format!("{name} {t} mean codes"), &q, &codes);
            if used.to_bits() != offset.to_bits() {
                torch_differs += 1;
            }
            // Recovered absmax within half the widest gap of the dynamic map (0.0703) of absmax2.
            let mut rec = vec![0f32; na];
            bnb4_nested_absmax(&qabsmax, &absmax2, offset, na, &mut rec).unwrap();
            for (i, (&r, &a)) in rec.iter().zip(&absmax).enumerate() {
                let tol = 0.0352 * absmax2[i / 256] + offset.abs() * 1e-6;
                assert!(
                    (r - a).abs() <= tol,
                    "{name} {t} recovered absmax[{i}] {r} vs {a}"
                );
            }
            checked += 1;
        }
    }
    println!("nested: {checked} fixtures; torch's offset differs from the correctly rounded mean in {torch_differs}");
    assert!(checked >= 30, "only {checked} nested fixtures");
}

/// The 8-bit dynamic step on its own against bitsandbytes' `quantize_blockwise` /
/// `dequantize_blockwise` (blocksize 256): every grid point of its index table, the code book's
/// midpoints and their neighbours, random values, a zero block and a partial block; and the code book.
#[test]
fn dynamic_step_is_byte_exact_with_bitsandbytes() {
    let map = f32s(&read("dynamic_map.f32"));
    assert_bits("dynamic map", &dynamic_map(), &map);
    let x = f32s(&read("dynamic.in.f32"));
    let codes = read("dynamic.codes.u8");
    let absmax2 = f32s(&read("dynamic.absmax.f32"));
    let deq = f32s(&read("dynamic.deq.f32"));
    assert!(x.len() > 65536 && x.len() % 256 != 0);
    let (mut q, mut a) = (vec![0u8; x.len()], vec![0f32; x.len().div_ceil(256)]);
    bnb_dynamic_quantize(&x, &mut q, &mut a).unwrap();
    assert_bytes("dynamic codes", &q, &codes);
    assert_bits("dynamic absmax", &a, &absmax2);
    let mut d = vec![0f32; x.len()];
    bnb4_nested_absmax(&codes, &absmax2, 0.0, x.len(), &mut d).unwrap();
    assert_bits("dynamic dequantized", &d, &deq);
    // Not always the nearest code: the grid moves some values to a neighbour's code.
    let nearest = |v: f32| {
        (0..256)
            .min_by(|&i, &j| (map[i] - v).abs().total_cmp(&(map[j] - v).abs()))
            .unwrap() as u8
    };
    let moved = x
        .iter()
        .zip(&q)
        .zip(&a.iter().flat_map(|&m| [m; 256]).collect::<Vec<_>>())
        .filter(|&((&v, &c), &m)| m == 1.0 && c != nearest(v))
        .count();
    println!(
        "dynamic step: {moved} of {} values are not coded to their nearest entry",
        x.len()
    );
    assert!(moved > 0);
}

#[test]
fn nested_errors_write_nothing_or_zero_fill() {
    let ty = Bnb4Type::Nf4;
    let n = 64 * 300 + 5;
    let mut x = wide(n, 29);
    let (nq, na, n2) = (
        bnb4_packed_len(n),
        bnb4_absmax_len(n, 64),
        bnb4_nested_len(n, 64),
    );
    assert_eq!((na, n2), (301, 2));
    let (mut q, mut qa, mut a2) = (vec![7u8; nq + 1], vec![7u8; na + 1], vec![3f32; n2 + 1]);
    let untouched = |q: &[u8], qa: &[u8], a2: &[f32]| {
        q.iter().all(|&c| c == 7) && qa.iter().all(|&c| c == 7) && a2.iter().all(|&v| v == 3.0)
    };
    for (bs, dq, dqa, da2, off) in [
        (64, nq - 1, na, n2, None),
        (64, nq, na - 1, n2, None),
        (64, nq, na, n2 - 1, None),
        (48, nq, na, n2, None),
        (64, nq, na, n2, Some(f32::NAN)),
        (64, nq, na, n2, Some(f32::INFINITY)),
    ] {
        let e = bnb4_quantize_nested(
            ty,
            Src::F32(&x),
            bs,
            off,
            &mut q[..dq],
            &mut qa[..dqa],
            &mut a2[..da2],
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                QuantError::BufferTooSmall { .. } | QuantError::InvalidArgument(_)
            ),
            "{e}"
        );
        assert!(untouched(&q, &qa, &a2), "{e}");
    }
    let e =
        bnb4_quantize_nested(ty, Src::F32(&[]), 64, None, &mut q, &mut qa, &mut a2).unwrap_err();
    assert!(matches!(e, QuantError::InvalidArgument(_)), "{e}");
    // absmax - offset overflows: a value error, the outputs zero-filled.
    let mut big = x.clone();
    big[0] = 3e38;
    let e = bnb4_quantize_nested(
        ty,
        Src::F32(&big),
        64,
        Some(-f32::MAX),
        &mut q,
        &mut qa,
        &mut a2,
    )
    .unwrap_err();
    assert!(matches!(e, QuantError::NonFinite { .. }), "{e}");
    assert!(q[..nq].iter().all(|&c| c == 0) && q[nq] == 7);
    assert!(qa[..na].iter().all(|&c| c == 0) && qa[na] == 7);
    assert!(a2[..n2].iter().all(|&v| v == 0.0) && a2[n2] == 3.0);
    x[4000] = f32::NAN;
    let (mut q, mut qa, mut a2) = (vec![7u8; nq], vec![7u8; na], vec![3f32; n2]);
    let e = bnb4_quantize_nested(ty, Src::F32(&x), 64, None, &mut q, &mut qa, &mut a2).unwrap_err();
    assert!(
        matches!(e, QuantError::NonFinite { index: 4000, .. }),
        "{e}"
    );
    assert!(
        q.iter().all(|&c| c == 0) && qa.iter().all(|&c| c == 0) && a2.iter().all(|&v| v == 0.0)
    );
    // Dequantization.
    let (q, qa, mut a2) = (vec![0x12u8; nq], vec![200u8; na], vec![0.5f32; n2]);
    let mut d = vec![5f32; n];
    for (sq, sqa, sa2, sd, off) in [
        (nq - 1, na, n2, n, 0.0),
        (nq, na - 1, n2, n, 0.0),
        (nq, na, n2 - 1, n, 0.0),
        (nq, na, n2, n - 1, 0.0),
        (nq, na, n2, n, f32::NAN),
    ] {
        let e = bnb4_dequantize_nested(
            ty,
            &q[..sq],
            &qa[..sqa],
            &a2[..sa2],
            off,
            n,
            64,
            &mut d[..sd],
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                QuantError::BufferTooSmall { .. } | QuantError::InvalidArgument(_)
            ),
            "{e}"
        );
    }
    a2[1] = f32::INFINITY;
    let e = bnb4_dequantize_nested(ty, &q, &qa, &a2, 0.0, n, 64, &mut d).unwrap_err();
    assert!(matches!(e, QuantError::NonFinite { index: 1, .. }), "{e}");
    a2[1] = f32::MAX;
    let e = bnb4_dequantize_nested(ty, &q, &qa, &a2, f32::MAX, n, 64, &mut d).unwrap_err();
    assert!(matches!(e, QuantError::NonFinite { .. }), "{e}");
    assert!(d.iter().all(|&v| v == 5.0));
    bnb4_dequantize_nested(ty, &q, &qa, &a2, 0.0, n, 64, &mut d).unwrap();
    assert!(d.iter().all(|&v| v != 5.0));
}

/// The library's own round trip on random data: the default offset is the mean rule, and decoding
/// the nested statistics gives absmax values within the 8-bit step of the plain ones.
#[test]
fn nested_round_trip() {
    for (k, &(n, bs)) in [
        (1, 32),
        (100, 32),
        (64 * 257, 64),
        (70001, 4096),
        (40000, 32),
    ]
    .iter()
    .enumerate()
    {
        let x = wide(n, k as u64 + 41);
        for ty in [Bnb4Type::Nf4, Bnb4Type::Fp4] {
            let (nq, na, n2) = (
                bnb4_packed_len(n),
                bnb4_absmax_len(n, bs),
                bnb4_nested_len(n, bs),
            );
            let (mut q0, mut a0) = (vec![0u8; nq], vec![0f32; na]);
            bnb4_quantize_ref(ty, &x, bs, &mut q0, &mut a0).unwrap();
            let (mut q, mut qa, mut a2) = (vec![0u8; nq], vec![0u8; na], vec![0f32; n2]);
            let off =
                bnb4_quantize_nested(ty, Src::F32(&x), bs, None, &mut q, &mut qa, &mut a2).unwrap();
            assert_eq!(off, bnb4_absmax_mean(&a0).unwrap());
            assert_eq!(q, q0);
            let mut rec = vec![0f32; na];
            bnb4_nested_absmax(&qa, &a2, off, na, &mut rec).unwrap();
            for (i, (&r, &a)) in rec.iter().zip(&a0).enumerate() {
                let tol = 0.0352 * a2[i / 256] + off * 1e-6;
                assert!((r - a).abs() <= tol, "{ty:?} n {n}: absmax[{i}] {r} vs {a}");
            }
            let mut d = vec![0f32; n];
            let mut d0 = vec![0f32; n];
            bnb4_dequantize_nested(ty, &q, &qa, &a2, off, n, bs, &mut d).unwrap();
            bnb4_dequantize(ty, &q, &rec, n, bs, &mut d0).unwrap();
            assert_bits(&format!("{ty:?} n {n}"), &d, &d0);
        }
    }
}

fn wide(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let m = ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0;
            let e = ((s >> 3) % 30) as i32 - 20;
            if s % 89 == 0 {
                0.0
            } else {
                (m * 2f64.powi(e)) as f32
            }
        })
        .collect()
}

#[test]
fn fast_paths_equal_the_reference() {
    for (k, &(n, bs)) in [
        (1, 32),
        (63, 32),
        (64, 64),
        (1000, 64),
        (70001, 4096),
        (4097, 2048),
    ]
    .iter()
    .enumerate()
    {
        let x = wide(n, k as u64 + 3);
        let bf: Vec<u16> = x
            .iter()
            .map(|v| half::bf16::from_f32(*v).to_bits())
            .collect();
        let xb: Vec<f32> = bf
            .iter()
            .map(|&h| f32::from_bits(u32::from(h) << 16))
            .collect();
        for ty in [Bnb4Type::Nf4, Bnb4Type::Fp4] {
            let (nq, na) = (bnb4_packed_len(n), bnb4_absmax_len(n, bs));
            let (mut q0, mut a0, mut d0) = (vec![0u8; nq], vec![0f32; na], vec![0f32; n]);
            bnb4_quantize_ref(ty, &x, bs, &mut q0, &mut a0).unwrap();
            bnb4_dequantize_ref(ty, &q0, &a0, n, bs, &mut d0).unwrap();
            let (mut qb, mut ab) = (vec![0u8; nq], vec![0f32; na]);
            bnb4_quantize_ref(ty, &xb, bs, &mut qb, &mut ab).unwrap();
            for level in available_levels() {
                for threads in [1, 2, 5] {
                    let (mut q, mut a, mut d) = (vec![0u8; nq], vec![0f32; na], vec![0f32; n]);
                    let (mut q2, mut a2) = (vec![0u8; nq], vec![0f32; na]);
                    with_simd_level(level, || {
                        with_threads(threads, || {
                            bnb4_quantize(ty, Src::F32(&x), bs, &mut q, &mut a).unwrap();
                            bnb4_dequantize(ty, &q, &a, n, bs, &mut d).unwrap();
                            bnb4_quantize(ty, Src::Bf16(&bf), bs, &mut q2, &mut a2).unwrap();
                        })
                        .unwrap()
                    })
                    .unwrap();
                    let what = format!("{ty:?} n {n} bs {bs} {level:?} {threads}t");
                    assert_eq!(q, q0, "{what}");
                    assert_bits(&what, &a, &a0);
                    assert_bits(&what, &d, &d0);
                    assert_eq!(q2, qb, "{what} bf16");
                    assert_bits(&what, &a2, &ab);
                }
            }
            // Every value decodes to the nearest code book entry times its absmax, within half the
            // widest gap of the code book (1/6 for FP4, 0.1519 for NF4) times absmax.
            let half_gap = match ty {
                Bnb4Type::Fp4 => 1.0 / 6.0,
                Bnb4Type::Nf4 => 0.152,
            };
            for i in 0..n {
                let a = a0[i / bs] as f64;
                assert!(((x[i] - d0[i]) as f64).abs() <= half_gap * a * (1.0 + 1e-6));
            }
        }
    }
}

/// Values on and next to every midpoint times the block's absmax (a power of two, so exact, and 3.0
/// and 0.7, so rounded), in full blocks and partial last blocks of every length modulo 16: the SIMD
/// bodies (the binary search of the midpoints, the multiplication and the division) equal the
/// reference at every level.
#[test]
fn simd_bodies_equal_the_reference_on_midpoints() {
    for ty in [Bnb4Type::Nf4, Bnb4Type::Fp4] {
        let mut sorted: Vec<f32> = (0..16u8).map(|c| ty.value(c)).collect();
        sorted.sort_by(f32::total_cmp);
        let mids: Vec<f32> = sorted.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
        for scale in [1.0f32, 0.25, 3.0, 0.7] {
            let mut vals = Vec::new();
            for &m in &mids {
                let v = m * scale;
                vals.extend([v, f32::from_bits(v.to_bits().wrapping_add(1)), -v]);
                if v != 0.0 {
                    vals.push(f32::from_bits(v.to_bits().wrapping_sub(1)));
                }
            }
            for bs in [32usize, 64] {
                // Blocks led by their absmax, then the tails of every length modulo 16.
                let mut x = Vec::new();
                for chunk in vals.chunks(bs - 1) {
                    x.push(scale);
                    x.extend_from_slice(chunk);
                    x.resize(x.len().div_ceil(bs) * bs, 0.5 * scale);
                }
                for tail in 0..17usize {
                    let mut xt = x.clone();
                    xt.push(-scale);
                    xt.extend(vals.iter().take(tail));
                    let n = xt.len();
                    let (nq, na) = (bnb4_packed_len(n), bnb4_absmax_len(n, bs));
                    let (mut q0, mut a0) = (vec![0u8; nq], vec![0f32; na]);
                    bnb4_quantize_ref(ty, &xt, bs, &mut q0, &mut a0).unwrap();
                    for level in available_levels() {
                        let (mut q, mut a) = (vec![0u8; nq], vec![0f32; na]);
                        with_simd_level(level, || {
                            bnb4_quantize(ty, Src::F32(&xt), bs, &mut q, &mut a).unwrap()
                        })
                        .unwrap();
                        let what = format!("{ty:?} scale {scale} bs {bs} tail {tail} {level:?}");
                        assert_bytes(&what, &q, &q0);
                        assert_bits(&what, &a, &a0);
                    }
                }
            }
        }
    }
}

#[test]
fn errors_write_nothing_or_zero_fill() {
    let n = 1000;
    let mut x = wide(n, 17);
    let (mut q, mut a) = (vec![7u8; 500], vec![3f32; 16]);
    let ty = Bnb4Type::Nf4;
    for (bs, dst, am) in [(64, 499, 16), (64, 500, 15), (48, 500, 16), (8192, 500, 16)] {
        let e = bnb4_quantize(ty, Src::F32(&x), bs, &mut q[..dst], &mut a[..am]).unwrap_err();
        assert!(
            matches!(
                e,
                QuantError::BufferTooSmall { .. } | QuantError::InvalidArgument(_)
            ),
            "{e}"
        );
    }
    let e = bnb4_quantize(ty, Src::F32(&[]), 64, &mut q, &mut a).unwrap_err();
    assert!(matches!(e, QuantError::InvalidArgument(_)), "{e}");
    assert!(q.iter().all(|&c| c == 7) && a.iter().all(|&v| v == 3.0));
    assert!(Bnb4Type::from_code(0).is_err() && Bnb4Type::from_code(3).is_err());
    x[650] = f32::NAN;
    x[900] = f32::INFINITY;
    for level in available_levels() {
        for threads in [1, 2] {
            let (mut q, mut a) = (vec![7u8; 502], vec![3f32; 17]);
            let e = with_simd_level(level, || {
                with_threads(threads, || {
                    bnb4_quantize(ty, Src::F32(&x), 64, &mut q, &mut a).unwrap_err()
                })
                .unwrap()
            })
            .unwrap();
            assert!(matches!(e, QuantError::NonFinite { index: 650, .. }), "{e}");
            assert!(q[..500].iter().all(|&c| c == 0) && q[500..].iter().all(|&c| c == 7));
            assert!(a[..16].iter().all(|&v| v == 0.0) && a[16] == 3.0);
        }
    }
    let (q, mut a) = (vec![0x12u8; 500], vec![1f32; 16]);
    let mut d = vec![5f32; n];
    a[3] = f32::NAN;
    let e = bnb4_dequantize(ty, &q, &a, n, 64, &mut d).unwrap_err();
    assert!(matches!(e, QuantError::NonFinite { index: 3, .. }), "{e}");
    a[3] = 1.0;
    let e = bnb4_dequantize(ty, &q, &a, n, 64, &mut d[..n - 1]).unwrap_err();
    assert!(matches!(e, QuantError::BufferTooSmall { .. }), "{e}");
    let e = bnb4_dequantize(ty, &q[..499], &a, n, 64, &mut d).unwrap_err();
    assert!(matches!(e, QuantError::BufferTooSmall { .. }), "{e}");
    assert!(d.iter().all(|&v| v == 5.0));
}

/// The relative output error `||X W^T - X Q(W)^T||^2 / ||X W^T||^2` of NF4 and FP4 (blocks of 64,
/// bitsandbytes' default) on every bundled MiniLM layer, printed, against a stated bound; NF4 must
/// beat FP4 on every layer (its levels follow the weights' normal distribution).
#[test]
fn real_layers_error() {
    const NF4_BOUND: f64 = 1.5e-2;
    const FP4_BOUND: f64 = 2.5e-2;
    let (mut worst_nf4, mut worst_fp4) = (0f64, 0f64);
    for l in common::LAYERS {
        let w = l.weight();
        let x = l.activations();
        let meter = common::OutputMeter::new(&x, l.cols);
        let norm = meter.sq_norm_f32(&w);
        let mut err = [0f64; 2];
        for (k, ty) in [Bnb4Type::Nf4, Bnb4Type::Fp4].into_iter().enumerate() {
            let n = w.len();
            let (mut q, mut a, mut d) = (
                vec![0u8; bnb4_packed_len(n)],
                vec![0f32; bnb4_absmax_len(n, 64)],
                vec![0f32; n],
            );
            bnb4_quantize(ty, Src::F32(&w), 64, &mut q, &mut a).unwrap();
            bnb4_dequantize(ty, &q, &a, n, 64, &mut d).unwrap();
            err[k] = meter.relative_error(&w, &d, norm);
        }
        println!(
            "bnb4 blocksize 64 {:<40} NF4 {:.4e}  FP4 {:.4e}  (INT4 g128 {:.4e})",
            l.name, err[0], err[1], l.int4_g128
        );
        assert!(err[0] < err[1], "{}: NF4 {} FP4 {}", l.name, err[0], err[1]);
        worst_nf4 = worst_nf4.max(err[0]);
        worst_fp4 = worst_fp4.max(err[1]);
    }
    println!("bnb4 worst NF4 {worst_nf4:.4e} (bound {NF4_BOUND:.1e}), FP4 {worst_fp4:.4e} (bound {FP4_BOUND:.1e})");
    assert!(worst_nf4 > 0.0 && worst_nf4 <= NF4_BOUND);
    assert!(worst_fp4 > 0.0 && worst_fp4 <= FP4_BOUND);
}
