//! GPTQ's Cholesky factorization and triangular inverse (f32 or f64) on the caller's threads, with the
//! bits of faer's sequential `cholesky_in_place` and `invert_lower_triangular` for the same type.
//!
//! Why not faer's own parallelism: it needs faer's `rayon` feature, which switches on a per-thread
//! packing buffer in private-gemm-x86 sized from the detected last-level cache (64 MiB a thread on a
//! 32 MiB-L3 VM, far more on a big server) that pushed GPTQ's peak past its 2x (Hessian + weight)
//! limit (docs/speed.md). So this module runs the outer step of faer's own algorithms itself and
//! splits their big products and solves into fixed panels handed to [`for_each_job`]:
//! - the Cholesky is faer's right-looking blocked loop (`cholesky_recursion_right_looking`: diagonal
//!   blocks of [`CHOLESKY_BLOCK`], each factored by faer, then the panel solve and the trailing
//!   update), with the solve split by columns of the right-hand side and the update by row panels;
//! - the inverse is the top level of faer's recursive `invert_lower_triangular_impl`: the two halves
//!   (independent, so two jobs, each inverted by faer), then `-L21 M11` split by row panels and the
//!   solve by `L22` split by columns.
//!
//! Every element is computed by the same faer kernel call on the same operands as in faer's
//! sequential run: a product's element depends on its row of the left operand, its column of the
//! right one and the depth (private-gemm blocks the depth by the depth alone), a solve's column on
//! that column alone. The panels are fixed sizes independent of the thread count, so the result does
//! not depend on it; that it equals faer's sequential result is tested bit for bit over sizes and
//! thread counts (below, and GPTQ's 4096^2 hash in docs/speed.md). This holds on x86-64 only (see
//! [`SPLITS`]); elsewhere the factorization runs on one thread, as faer's.
use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::matmul::triangular::{matmul as triangular_matmul, BlockStructure};
use faer::linalg::triangular_inverse::invert_lower_triangular;
use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, MatMut, MatRef, Par};

use super::parallel::for_each_job;

/// The two types the factorization runs in: f32 (GPTQ's fast path) and f64 (its fallback).
pub(crate) trait Real: faer::traits::RealField + Copy + Send + Sync {
    /// `-1`, the factor of the updates.
    const NEG_ONE: Self;
}

impl Real for f32 {
    const NEG_ONE: Self = -1.0;
}

impl Real for f64 {
    const NEG_ONE: Self = -1.0;
}

/// Whether the work is split at all: on x86-64 only. The argument above needs faer's products to
/// block the depth by the depth alone, which holds for private-gemm-x86 (faer's x86-64 kernels); on
/// other targets faer multiplies with the `gemm` crate, whose depth blocking also depends on the
/// other dimensions, and there a split inverse measurably differed from faer's (aarch64 under qemu,
/// n = 100 cut into 24-row panels). There both functions are faer's sequential ones, whole.
const SPLITS: bool = cfg!(target_arch = "x86_64");

/// faer's block size of the right-looking Cholesky, the same for f32 and f64
/// (`LdltParams::auto().block_size`); the
/// diagonal blocks of `n > CHOLESKY_BLOCK` are `min(n.next_power_of_two() / 2, CHOLESKY_BLOCK)` wide.
const CHOLESKY_BLOCK: usize = 128;

/// How the work is cut. Only [`TILING`] is used outside the tests, which also cut small matrices into
/// small panels to check the bits on many shapes quickly.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tiling {
    /// Below this size the matrix is left to faer whole (jobs would cost more than they save). Above
    /// faer's unblocked threshold (64), so that the blocked loop here is the one faer runs.
    pub(crate) min_split: usize,
    /// Rows (or right-hand-side columns) of one job.
    pub(crate) panel: usize,
}

/// Panels of 256: a job is a full-speed product (a 256 x 128 panel solve, a 256-row product) and a
/// 4096^2 step has up to 16 of them to balance over the threads.
pub(crate) const TILING: Tiling = Tiling {
    min_split: 512,
    panel: 256,
};

/// Why [`cholesky_lower_in_place`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CholeskyError {
    /// The pivot of this column is not positive (as faer reports it): the matrix is not positive
    /// definite to working precision.
    NonPositivePivot(usize),
    /// faer's scratch (a column) could not be allocated.
    OutOfMemory,
}

/// Factors the symmetric positive definite `a` (lower triangle read; upper triangle untouched) in place
/// into `L` with `a = L L^T`, on up to `threads` threads.
pub(crate) fn cholesky_lower_in_place<T: Real>(
    a: MatMut<'_, T>,
    threads: usize,
    tiling: Tiling,
) -> Result<(), CholeskyError> {
    let n = a.nrows();
    assert!(a.ncols() == n && tiling.min_split > 64 && tiling.panel > 0);
    let block = if n < tiling.min_split || !SPLITS {
        n
    } else {
        (n.next_power_of_two() / 2).min(CHOLESKY_BLOCK)
    };
    let mut mem = faer::dyn_stack::MemBuffer::try_new(cholesky_in_place_scratch::<T>(
        block,
        Par::Seq,
        Default::default(),
    ))
    .map_err(|_| CholeskyError::OutOfMemory)?;
    let stack = faer::dyn_stack::MemStack::new(&mut mem);
    if block == n {
        return cholesky_whole(a, stack).map_err(CholeskyError::NonPositivePivot);
    }
    let mut a = a;
    let mut j = 0;
    while j < n {
        let b = block.min(n - j);
        let (mut a00, _, a10, a11) = a.rb_mut().get_mut(j.., j..).split_at_mut(b, b);
        cholesky_whole(a00.rb_mut(), stack)
            .map_err(|index| CholeskyError::NonPositivePivot(j + index))?;
        let a00 = a00.rb();
        // A10 := A10 L00^-T, i.e. L00 X = A10^T: independent columns of X.
        let mut a10 = a10;
        let jobs = column_chunks(a10.rb_mut().transpose_mut(), tiling.panel);
        for_each_job(jobs, threads, |x| {
            solve_lower_triangular_in_place(a00, x, Par::Seq)
        });
        // A11 -= A10 A10^T (lower triangle), by row panels: panel rows r0..r1 are the triangle
        // [r0..r1, r0..r1] and the rectangle [r0..r1, 0..r0].
        let a10 = a10.rb();
        let jobs = row_panels(a11, tiling.panel);
        for_each_job(jobs, threads, |(r0, panel)| {
            let rows = a10.subrows(r0, panel.nrows());
            let (rect, tri) = panel.split_at_col_mut(r0);
            let tri = tri.subcols_mut(0, rows.nrows());
            triangular_matmul(
                tri,
                BlockStructure::TriangularLower,
                Accum::Add,
                rows,
                BlockStructure::Rectangular,
                rows.adjoint(),
                BlockStructure::Rectangular,
                T::NEG_ONE,
                Par::Seq,
            );
            triangular_matmul(
                rect,
                BlockStructure::Rectangular,
                Accum::Add,
                rows,
                BlockStructure::Rectangular,
                a10.subrows(0, r0).adjoint(),
                BlockStructure::Rectangular,
                T::NEG_ONE,
                Par::Seq,
            );
        });
        j += b;
    }
    Ok(())
}

/// `dst := src^-1` for the lower triangular `src`: only `src`'s lower triangle is read and only
/// `dst`'s lower triangle is written, as with faer's `invert_lower_triangular` (whose bits it gives),
/// on up to `threads` threads.
pub(crate) fn invert_lower_into<T: Real>(
    dst: MatMut<'_, T>,
    src: MatRef<'_, T>,
    threads: usize,
    tiling: Tiling,
) {
    let n = dst.nrows();
    assert!(dst.ncols() == n && src.nrows() == n && src.ncols() == n);
    assert!(tiling.min_split > 2 && tiling.panel > 0);
    if n < tiling.min_split || !SPLITS {
        invert_lower_triangular(dst, src, Par::Seq);
        return;
    }
    // faer's split: the top-left half is n / 2 wide. The two halves are independent.
    let mid = n / 2;
    let (mut dst_tl, _, mut dst_bl, mut dst_br) = dst.split_at_mut(mid, mid);
    let (src_tl, _, src_bl, src_br) = src.split_at(mid, mid);
    let halves = vec![(dst_tl.rb_mut(), src_tl), (dst_br.rb_mut(), src_br)];
    for_each_job(halves, threads, |(d, s)| {
        invert_lower_triangular(d, s, Par::Seq)
    });
    // M21 := -L21 M11 (M11 lower triangular), by row panels.
    let dst_tl = dst_tl.rb();
    for_each_job(
        row_panels(dst_bl.rb_mut(), tiling.panel),
        threads,
        |(r0, panel)| {
            let rows = src_bl.subrows(r0, panel.nrows());
            triangular_matmul(
                panel,
                BlockStructure::Rectangular,
                Accum::Replace,
                rows,
                BlockStructure::Rectangular,
                dst_tl,
                BlockStructure::TriangularLower,
                T::NEG_ONE,
                Par::Seq,
            )
        },
    );
    // M21 := L22^-1 M21, by columns.
    for_each_job(column_chunks(dst_bl, tiling.panel), threads, |x| {
        solve_lower_triangular_in_place(src_br, x, Par::Seq)
    });
}

/// faer's sequential Cholesky of the whole of `a`; `Err(column)` at a non-positive pivot. `stack` holds
/// at least `cholesky_in_place_scratch(a.nrows())`.
fn cholesky_whole<T: Real>(
    a: MatMut<'_, T>,
    stack: &mut faer::dyn_stack::MemStack,
) -> Result<(), usize> {
    match cholesky_in_place(a, Default::default(), Par::Seq, stack, Default::default()) {
        Ok(_) => Ok(()),
        Err(faer::linalg::cholesky::llt::factor::LltError::NonPositivePivot { index }) => {
            Err(index)
        }
    }
}

/// `m` cut into about `rows / panel` panels of `panel` to `2 panel` rows (one panel when it has fewer
/// rows), each with its first row; the last rows first, so the heaviest jobs of a triangular update
/// start first. No panel is thinner than `panel`: a thin product could take another of faer's kernels
/// (its matrix-vector or small-product paths) than the whole product takes.
fn row_panels<T>(m: MatMut<'_, T>, panel: usize) -> Vec<(usize, MatMut<'_, T>)> {
    let rows = m.nrows();
    let count = (rows / panel).max(1);
    let mut panels = Vec::with_capacity(count);
    let mut rest = m;
    let mut r0 = 0;
    for p in 1..=count {
        let r1 = p * rows / count;
        let (top, bottom) = rest.split_at_row_mut(r1 - r0);
        panels.push((r0, top));
        rest = bottom;
        r0 = r1;
    }
    panels.reverse();
    panels
}

/// `m` cut into column chunks by halving, as faer's triangular solve halves the columns of a
/// right-hand side wider than 64 (at `k / 2`) when the triangle is at most 128: a chunk is a node of
/// that same tree, so faer's work on a chunk is its work on that part of the whole. A chunk is halved
/// while both halves keep at least `width` columns.
fn column_chunks<T>(m: MatMut<'_, T>, width: usize) -> Vec<MatMut<'_, T>> {
    fn halve<'a, T>(m: MatMut<'a, T>, width: usize, out: &mut Vec<MatMut<'a, T>>) {
        let k = m.ncols();
        if k > 64 && k / 2 >= width {
            let (left, right) = m.split_at_col_mut(k / 2);
            halve(left, width, out);
            halve(right, width, out);
        } else {
            out.push(m);
        }
    }
    let mut chunks = Vec::new();
    halve(m, width, &mut chunks);
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    /// A symmetric positive definite `n x n` matrix, `X^T X / t + I / 10` of a random `t x n` `X`.
    fn spd(n: usize, seed: u64) -> Mat<f64> {
        let t = n + 5;
        let mut s = seed | 1;
        let x = Mat::<f64>::from_fn(t, n, |_, _| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        });
        let mut a = x.adjoint() * &x;
        for i in 0..n {
            for j in 0..n {
                a[(i, j)] /= t as f64;
            }
            a[(i, i)] += 0.1;
        }
        a
    }

    fn same_lower_bits(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> bool {
        let n = a.nrows();
        (0..n).all(|j| (j..n).all(|i| a[(i, j)].to_bits() == b[(i, j)].to_bits()))
    }

    fn faer_cholesky(a: &Mat<f64>) -> (Mat<f64>, Result<(), CholeskyError>) {
        let mut l = a.clone();
        let mut mem = faer::dyn_stack::MemBuffer::new(cholesky_in_place_scratch::<f64>(
            a.nrows(),
            Par::Seq,
            Default::default(),
        ));
        let stack = faer::dyn_stack::MemStack::new(&mut mem);
        let r = cholesky_whole(l.as_mut(), stack).map_err(CholeskyError::NonPositivePivot);
        (l, r)
    }

    /// Small matrices cut into small ragged panels (many shapes quickly), and the shipped tiling on
    /// sizes around its threshold and faer's block sizes.
    fn cases() -> Vec<(usize, Tiling)> {
        let small = Tiling {
            min_split: 65,
            panel: 24,
        };
        let mut cases: Vec<_> = [65, 100, 128, 129, 200, 257, 300]
            .into_iter()
            .map(|n| (n, small))
            .collect();
        cases.extend([511, 512, 515, 640, 1029, 1500].map(|n| (n, TILING)));
        cases
    }

    #[test]
    fn the_split_cholesky_has_the_bits_of_faers_whatever_the_thread_count() {
        for (n, tiling) in cases() {
            let a = spd(n, n as u64);
            let (want, ok) = faer_cholesky(&a);
            assert_eq!(ok, Ok(()));
            for threads in [1, 2, 3] {
                let mut got = a.clone();
                assert_eq!(
                    cholesky_lower_in_place(got.as_mut(), threads, tiling),
                    Ok(())
                );
                assert!(
                    same_lower_bits(got.as_ref(), want.as_ref()),
                    "n = {n}, {threads} threads, {tiling:?}"
                );
            }
        }
    }

    #[test]
    fn the_split_cholesky_fails_at_faers_column_and_leaves_the_upper_triangle() {
        for (n, tiling) in cases() {
            let mut a = spd(n, 3);
            // Column k is a copy of column k - 1 (rank deficient from k on): the pivot at k is about
            // 0, so its sign is whatever rounding gives; make it negative by lowering the diagonal.
            let k = n * 2 / 3;
            for i in 0..n {
                a[(i, k)] = a[(i, k - 1)];
                a[(k, i)] = a[(k - 1, i)];
            }
            a[(k, k)] = a[(k - 1, k - 1)] - 0.05;
            let (_, want) = faer_cholesky(&a);
            assert_eq!(want, Err(CholeskyError::NonPositivePivot(k)), "n = {n}");
            let mut got = a.clone();
            for i in 0..n {
                for j in i + 1..n {
                    got[(i, j)] = f64::NAN;
                }
            }
            assert_eq!(
                cholesky_lower_in_place(got.as_mut(), 2, tiling),
                want,
                "n = {n}"
            );
            let upper_kept = (0..n).all(|i| (i + 1..n).all(|j| got[(i, j)].is_nan()));
            assert!(upper_kept, "n = {n}: the upper triangle was written");
        }
    }

    #[test]
    fn the_split_inverse_has_the_bits_of_faers_and_writes_only_the_lower_triangle() {
        for (n, tiling) in cases() {
            let (l, _) = faer_cholesky(&spd(n, 5));
            // The upper triangles are NaN: a read of one would show in the result, a write in `dst`.
            let mut src = l.clone();
            for j in 1..n {
                for i in 0..j {
                    src[(i, j)] = f64::NAN;
                }
            }
            let mut want = Mat::<f64>::zeros(n, n);
            invert_lower_triangular(want.as_mut(), src.as_ref(), Par::Seq);
            for threads in [1, 2, 3] {
                let mut got = Mat::<f64>::from_fn(n, n, |i, j| if i < j { f64::NAN } else { 0.0 });
                invert_lower_into(got.as_mut(), src.as_ref(), threads, tiling);
                assert!(
                    same_lower_bits(got.as_ref(), want.as_ref()),
                    "n = {n}, {threads} threads, {tiling:?}"
                );
                let upper_kept = (0..n).all(|i| (i + 1..n).all(|j| got[(i, j)].is_nan()));
                assert!(upper_kept, "n = {n}: the upper triangle was written");
                assert!(got[(n - 1, 0)].is_finite());
            }
        }
    }

    #[test]
    fn in_f32_the_split_cholesky_and_inverse_have_the_bits_of_faers() {
        for (n, tiling) in cases() {
            let a = spd(n, n as u64 + 1);
            let a = Mat::<f32>::from_fn(n, n, |i, j| a[(i, j)] as f32);
            let mut want = a.clone();
            let mut mem = faer::dyn_stack::MemBuffer::new(cholesky_in_place_scratch::<f32>(
                n,
                Par::Seq,
                Default::default(),
            ));
            let stack = faer::dyn_stack::MemStack::new(&mut mem);
            assert_eq!(cholesky_whole(want.as_mut(), stack), Ok(()), "n = {n}");
            let mut want_inv = Mat::<f32>::zeros(n, n);
            invert_lower_triangular(want_inv.as_mut(), want.as_ref(), Par::Seq);
            let lower_bits = |x: MatRef<'_, f32>, y: MatRef<'_, f32>| {
                (0..n).all(|j| (j..n).all(|i| x[(i, j)].to_bits() == y[(i, j)].to_bits()))
            };
            for threads in [1, 2, 3] {
                let mut got = a.clone();
                assert_eq!(
                    cholesky_lower_in_place(got.as_mut(), threads, tiling),
                    Ok(())
                );
                assert!(
                    lower_bits(got.as_ref(), want.as_ref()),
                    "Cholesky, n = {n}, {threads} threads, {tiling:?}"
                );
                let mut inv = Mat::<f32>::zeros(n, n);
                invert_lower_into(inv.as_mut(), want.as_ref(), threads, tiling);
                assert!(
                    lower_bits(inv.as_ref(), want_inv.as_ref()),
                    "inverse, n = {n}, {threads} threads, {tiling:?}"
                );
            }
        }
    }
}
