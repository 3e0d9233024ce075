//! AVX2 and AVX-512 bodies of the kernels (x86-64 only), chosen at run time (see [`super::simd`]).
//!
//! Every function here is `unsafe` only because it is compiled for a CPU feature: the caller must have
//! checked that the CPU has it (the dispatch in the kernel files does so through
//! [`super::simd::SimdLevel`], which only holds a level the CPU has). Slices carry their lengths; no
//! function reads or writes outside them.
//!
//! Each body computes exactly what the portable code computes, operation for operation (same
//! divisions, same comparisons, no fused multiply-add), or where its doc says so (the FP8 encoder's
//! rounding by addition, the FP8 decoders through f16, the INT8 and INT4 quantizers' clamps
//! after the rounding, in integer lanes, the scaled FP8 encoder without its overflow clamps where
//! the scale is normal) by another exact route to the same bits, so the results are bit-identical:
//! - `y = x / s` is a vector division (IEEE, correctly rounded like the scalar one);
//! - the clamps `if y < lo { lo } else { y }` are `max(y, lo)` (x86 `max(a, b)` is `a > b ? a : b`);
//! - rounding to an integer ties-to-even is `cvtps2dq` under the default rounding mode (Rust code always
//!   runs in it), exactly as the magic-number addition of the portable code.
//!
//! Both levels divide (`x / s` in 8 or 16 lanes). An earlier AVX2 form multiplied by `1 / s` and
//! redid the rare vectors near a rounding boundary with the division (same codes); measured on Zen 3
//! (64 Mi elements, in the pipelined row quantizers) it was slower than dividing: INT8 g128 0.78-0.92
//! of the ceiling against 0.90-0.94, FP8 E4M3 per row 0.62-0.64 against 0.67-0.83. On the AVX-512
//! CPUs (Zen 5) the division was faster too (0.85 against 0.62). CPUs whose 8-lane division is much
//! slower (Haswell) were not measured. On Zen 4 (a probe outside the repository, about 3.66 GHz)
//! a 16-lane division issues every 6 cycles with normal operands (11 with zero or subnormal ones),
//! and the FP8 encoder's other operations keep the vector units busier than the divisions keep
//! the divider: in L1 the scaled FP8 codes (without clamps) took 2.64 ns per 16 lanes with the
//! division and 2.40-2.54 with a multiplication in its place.
#![allow(clippy::missing_safety_doc)]

use super::fp8::Fp8Spec;

/// Prefetches the cache line of `ahead[i]` into L1, if `i` is inside `ahead` (a hint: it reads
/// nothing in the program's sense and cannot fault).
#[inline(always)]
unsafe fn prefetch(ahead: &[f32], i: usize) {
    if i < ahead.len() {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(ahead.as_ptr().add(i) as *const i8);
    }
}

/// How far ahead of the group being quantized the codes loop prefetches, in elements: past the
/// next group (whose absmax the same loop takes), 4 KiB further. Measured on Zen 3 at 64 Mi
/// elements: 256 to 2048 elements all help, 1024 most.
const PREFETCH_AHEAD: usize = 1024;

/// From this group length on, the pipelined loops do not take the next group's absmax (or range) in
/// the codes loop: each group's codes run over it alone in pieces of [`LONG_PIECE`], each piece
/// preceded by the prefetch of its share of the input past the group into L2 (`prefetcht1`), and
/// the next group's absmax is then a pass of its own, from L2 (see [`long_group`]). Taken in the
/// codes loop, each element is read twice about two groups apart: at 4096 (per row on a
/// 4096-column matrix) that is 32 KiB, all of Zen 4's L1. Measured on Zen 4 (64 Mi elements,
/// AVX-512 INT8, a probe outside the repository, medians of 7): per row at 1024 to 4096 columns
/// 4.4-4.6 G elements/s taken together against 5.1-5.6 apart; groups of 256 4.5 against 4.8, of
/// 512 4.5 against 5.3; groups of 128 4.5-4.6 together against 4.3 apart, so they stay fused.
/// Apart but prefetched into L1 measured 4.3-4.4 per row.
const LONG_GROUP_MIN: usize = 256;

/// The piece of a long group between two bursts of L2 prefetches (16 cache lines).
const LONG_PIECE: usize = 256;

/// From this scale on, the scaled FP8 quantizer's codes need no overflow clamp (`BOUNDED` in the
/// encoders): with `s = RN(absmax / 448)` normal, `s >= absmax / 448 * (1 - 2^-24)`, so every
/// `|x| / s` of the group is below `448 * (1 + 2^-23)` and rounds (as an f32) to at most
/// `448 + 2^-15`, far below 464, the midpoint where E4M3 would round past its largest value 448. A
/// subnormal scale carries fewer bits and the quotients can exceed 448 by far: those groups keep
/// the clamps. Saves two of the encoder's operations per 16 lanes (AVX-512, Zen 4: the scaled FP8
/// quantizer in L2 from 4.0 to 4.6 G elements/s per row and from 3.9 to 4.6 at g128, a probe outside
/// the repository, best of 9 over four paired series).
const BOUNDED_SCALE_MIN: f32 = f32::MIN_POSITIVE;

/// Runs `piece` over the pieces of the long group `r` in order, before each prefetching into L2
/// (`prefetcht1`) its share of what follows the group: the same offset in the group as long as
/// `r` starting `PREFETCH_AHEAD` elements past it, as the fused loops' `ahead`. `prefetcht1` fills
/// L2 and not L1 on the CPUs that tell the two apart (AMD's guide documents it from Zen 4); where it
/// fills L1 too, it is `prefetcht0`.
#[inline(always)]
unsafe fn long_group(
    src: &[f32],
    r: std::ops::Range<usize>,
    mut piece: impl FnMut(std::ops::Range<usize>),
) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
    let shift = r.len() + PREFETCH_AHEAD;
    let mut start = r.start;
    while start < r.end {
        let end = (start + LONG_PIECE).min(r.end);
        for i in (start + shift..end + shift).step_by(16) {
            if i < src.len() {
                _mm_prefetch::<_MM_HINT_T1>(src.as_ptr().add(i) as *const i8);
            }
        }
        piece(start..end);
        start = end;
    }
}

/// The loop of the symmetric quantizers (INT8 and scaled FP8, AVX2 and AVX-512), through
/// [`pipelined`]: the groups of the rows (as many as `scales` holds) in order, each group's absmax
/// taken by the codes loop of an earlier group, with a level's bodies `body`. Each group's absmax is
/// passed to `accept` before any of its codes; on a rejection the loop stops and returns false.
/// `src` may go on past the rows (the prefetch reads from there).
#[inline(always)]
unsafe fn pipelined_groups<B: SymmetricBody>(
    src: &[f32],
    cols: usize,
    glen: usize,
    scales: &mut [f32],
    accept: impl Fn(f32) -> bool,
    body: B,
) -> bool {
    let gpr = cols.div_ceil(glen);
    let n_groups = scales.len() / gpr * gpr;
    let mut q = Symmetric {
        src,
        scales,
        accept,
        body,
    };
    pipelined(src, cols, glen, n_groups, &mut q)
}

/// A level's bodies of INT8 or scaled FP8 for [`pipelined_groups`], always inlined into it (see
/// [`Pipeline`]).
trait SymmetricBody {
    /// The largest code magnitude (the scale is absmax / `QMAX`).
    const QMAX: f32;
    /// The whole-group absmax of `x` (sign-cleared bits), for the groups the codes loop could not
    /// take.
    unsafe fn absmax_bits(x: &[f32]) -> u32;
    /// Writes the codes of `x = src[r]` with scale `s` (0: all zero codes) into the output at `r`,
    /// taking in the same loop the absmax of `next[..k]` (a multiple of the level's step, 32 or 64)
    /// and prefetching `ahead`: returns `k` (0 when it took none) and its bits.
    unsafe fn codes(
        &mut self,
        x: &[f32],
        s: f32,
        r: std::ops::Range<usize>,
        next: &[f32],
        ahead: &[f32],
    ) -> (usize, u32);
}

/// A quantizer as [`pipelined`] drives it, group by group. Every method is always inlined into the
/// loop, and so compiled for the features of the level's function that runs it (a closure or a
/// function left out of line there is compiled without them: its intrinsics become calls).
trait Pipeline {
    /// Two groups ahead, whether the next group's parameters are computed after the current
    /// group's codes (true) or before them (see [`pipelined`]).
    const LATE: bool;
    /// What a group's parameters come from (its absmax, or its range).
    type Measure: Copy;
    /// What its codes need (its scale, or its scale and zero point).
    type Params: Copy + Default;
    /// The measure of `x` (empty: the measure of nothing).
    unsafe fn measure(&self, x: &[f32]) -> Self::Measure;
    /// `m` completed with the elements `rest`.
    fn fold(m: Self::Measure, rest: &[f32]) -> Self::Measure;
    /// Checks group `i`'s measure, writes its parameters and returns them; None: rejected.
    fn params(&mut self, i: usize, m: Self::Measure) -> Option<Self::Params>;
    /// Writes the codes of `src[r]` (group `g`, or a piece of it) with the parameters `p`, taking in
    /// the same loop the measure of `next[..k]` and prefetching `ahead`: returns `k` (0 when it took
    /// none) and that measure.
    unsafe fn codes(
        &mut self,
        g: &Group,
        r: std::ops::Range<usize>,
        p: Self::Params,
        next: &[f32],
        ahead: &[f32],
    ) -> (usize, Self::Measure);
}

/// INT8 and scaled FP8 as a [`Pipeline`]: see [`pipelined_groups`].
struct Symmetric<'a, Accept, B> {
    src: &'a [f32],
    scales: &'a mut [f32],
    accept: Accept,
    body: B,
}

impl<Accept: Fn(f32) -> bool, B: SymmetricBody> Pipeline for Symmetric<'_, Accept, B> {
    const LATE: bool = false;
    type Measure = u32;
    type Params = f32;

    #[inline(always)]
    unsafe fn measure(&self, x: &[f32]) -> u32 {
        B::absmax_bits(x)
    }

    #[inline(always)]
    fn fold(bits: u32, rest: &[f32]) -> u32 {
        let rest = rest.iter().map(|v| v.to_bits() & 0x7fff_ffff);
        rest.fold(bits, u32::max)
    }

    #[inline(always)]
    fn params(&mut self, i: usize, bits: u32) -> Option<f32> {
        let a = f32::from_bits(bits);
        if !(self.accept)(a) {
            return None;
        }
        let s = a / B::QMAX;
        self.scales[i] = s;
        Some(s)
    }

    #[inline(always)]
    unsafe fn codes(
        &mut self,
        _: &Group,
        r: std::ops::Range<usize>,
        s: f32,
        next: &[f32],
        ahead: &[f32],
    ) -> (usize, u32) {
        self.body.codes(&self.src[r.clone()], s, r, next, ahead)
    }
}

/// The software-pipelined loop of the quantizers with parameters per group (INT8, scaled FP8 and
/// INT4; AVX2 and AVX-512) over the first `n_groups` groups of the rows of `src` (see [`Pipeline`]):
/// each group's measure is taken by the codes loop of an earlier group (loads from memory
/// overlapping the arithmetic on data already in L1: the codes cost about as much as the memory
/// stream, so a separate measuring pass per group would leave the two mostly serial).
///
/// Groups shorter than [`LONG_GROUP_MIN`] are measured two groups ahead: while group `i`'s codes are
/// computed, the codes loop measures group `i + 2`, and the parameters of group `i + 1` (a check,
/// the reductions, one or two scalar divisions: dozens of cycles of dependent work) are computed
/// from the measure taken one iteration earlier. Nothing in group `i`'s codes waits for them, so
/// that chain overlaps the codes. One group ahead, each group's divisions waited for its own
/// parameters: on Zen 4, in L2 (a probe outside the repository, 64 Ki elements, best of 9, paired
/// series), the AVX-512 scaled FP8 quantizer g128 went from 3.4 to 3.9 G elements/s two ahead (g64
/// 2.7 to 3.2), INT4 g128 from 4.1 to 4.5 (with its codes body inlined; it was a call per group).
///
/// Where the parameters of group `i + 1` sit in the program matters too ([`Pipeline::LATE`]). Before
/// group `i`'s codes, they follow at once the reductions that end group `i - 1`'s codes loop and wait
/// for them: INT4's chain (two reductions, two dependent divisions, the conversions of the zero
/// point) then takes long enough to hold up the instructions behind it, though none of group `i`'s
/// codes depend on it (likely the oldest instructions holding the reorder buffer and schedulers).
/// After group `i`'s codes, its inputs have long been ready and it runs beside the codes. Measured on
/// Zen 4 in L2 (64 Ki elements, best of 9, five alternating runs): AVX-512 INT4 g128 from 4.2 to
/// 5.3 G elements/s, AVX2 4.0 to 4.3; with constant parameters in place of the whole chain (a
/// timing probe, wrong codes) it ran at 5.4, so the chain is now almost free. INT8 and FP8, whose
/// chains are one reduction and one division, stay before: after, INT8 g128 measured 7.5 against
/// 7.7 and FP8 g128 the same 4.8.
/// Long groups are quantized in pieces, then their successor is measured in a pass of its own, one
/// group ahead (see [`long_group`]; two ahead, that pass read from memory, not L2: INT4 per row on
/// 4096 columns 0.86 of the ceiling against 0.92). `src` may go on past the rows (the prefetch
/// reads from there).
#[inline(always)]
unsafe fn pipelined<Q: Pipeline>(
    src: &[f32],
    cols: usize,
    glen: usize,
    n_groups: usize,
    q: &mut Q,
) -> bool {
    // Two instances, so that the loop of short groups carries no code for long ones (with it, the
    // AVX-512 INT4 g128 loop measured 3.4 G/s against 3.6).
    if glen.min(cols) >= LONG_GROUP_MIN {
        pipelined_loop::<Q, true>(src, cols, glen, n_groups, q)
    } else {
        pipelined_loop::<Q, false>(src, cols, glen, n_groups, q)
    }
}

/// [`pipelined`]; `LONG`: the rows' groups may be long (see [`LONG_GROUP_MIN`]).
#[inline(always)]
unsafe fn pipelined_loop<Q: Pipeline, const LONG: bool>(
    src: &[f32],
    cols: usize,
    glen: usize,
    n_groups: usize,
    q: &mut Q,
) -> bool {
    if n_groups == 0 {
        return true;
    }
    // How many groups ahead of the one being quantized the codes loop measures.
    let lead = if LONG { 1 } else { 2 };
    // `g`: the group being quantized (i); `last`: the last group measured (i + lead - 1), its
    // measure `pending`; `cur`: the parameters computed last (group i's, two ahead).
    let mut g = Group::first(cols, glen);
    let (mut last, mut cur) = (g, Q::Params::default());
    if lead == 2 {
        let m = q.measure(&src[g.range()]);
        if !take_params(q, 0, m, &mut cur) {
            return false;
        }
        last = g.next(cols, glen);
    }
    let mut pending = q.measure(if lead - 1 < n_groups {
        &src[last.range()]
    } else {
        &[]
    });
    for i in 0..n_groups {
        // Each group is checked (its parameters computed) before any of its codes: a rejection
        // stops the loop either way (the streaming callers then zero-fill everything). One ahead,
        // group i here; two ahead, group i + 1 here or, `Q::LATE`, after group i's codes.
        if lead == 1 && !take_params(q, i, pending, &mut cur) {
            return false;
        }
        let p = cur;
        let check_next = lead == 2 && i + 1 < n_groups;
        if check_next && !Q::LATE && !take_params(q, i + 1, pending, &mut cur) {
            return false;
        }
        let (r, following) = (g.range(), last.next(cols, glen));
        let (next, fused, ahead) = look_ahead(src, r.clone(), following, i + lead < n_groups);
        let measured = if LONG && r.len() >= LONG_GROUP_MIN {
            long_group(src, r.clone(), |piece| {
                q.codes(&g, piece, p, &[], &[]);
            });
            q.measure(next)
        } else {
            match q.codes(&g, r, p, fused, ahead) {
                (0, _) => q.measure(next),
                (taken, m) => Q::fold(m, &next[taken..]),
            }
        };
        if check_next && Q::LATE && !take_params(q, i + 1, pending, &mut cur) {
            return false;
        }
        pending = measured;
        g = g.next(cols, glen);
        last = following;
    }
    true
}

/// Group `i`'s parameters from its measure `m` into `cur`; false when the group is rejected.
#[inline(always)]
fn take_params<Q: Pipeline>(q: &mut Q, i: usize, m: Q::Measure, cur: &mut Q::Params) -> bool {
    match q.params(i, m) {
        Some(p) => {
            *cur = p;
            true
        }
        None => false,
    }
}

/// What the pipelined loop needs past the group `r` it quantizes: the `following` group to measure
/// (`next`, empty when there is none), the same when the codes loop may take it in (`fused`: a group
/// of the same length, else empty) and the part of the input to prefetch (`ahead`:
/// `PREFETCH_AHEAD` elements past the end of `r`, as long as `r`).
#[inline(always)]
fn look_ahead(
    src: &[f32],
    r: std::ops::Range<usize>,
    following: Group,
    has_next: bool,
) -> (&[f32], &[f32], &[f32]) {
    let next = if has_next {
        &src[following.range()]
    } else {
        &[]
    };
    let fused = if next.len() == r.len() { next } else { &[] };
    let from = (r.end + PREFETCH_AHEAD).min(src.len());
    let ahead = &src[from..(from + r.len()).min(src.len())];
    (next, fused, ahead)
}

/// A group of the rows that the pipelined loop walks: its range in the input, its row and where
/// that row starts (the next group follows from it without a division).
#[derive(Clone, Copy)]
struct Group {
    start: usize,
    end: usize,
    row: usize,
    row_start: usize,
}

impl Group {
    #[inline(always)]
    fn first(cols: usize, glen: usize) -> Self {
        Self {
            start: 0,
            end: glen.min(cols),
            row: 0,
            row_start: 0,
        }
    }

    #[inline(always)]
    fn next(self, cols: usize, glen: usize) -> Self {
        let (row, row_start) = if self.end == self.row_start + cols {
            (self.row + 1, self.end)
        } else {
            (self.row, self.row_start)
        };
        Self {
            start: self.end,
            end: (self.end + glen).min(row_start + cols),
            row,
            row_start,
        }
    }

    #[inline(always)]
    fn range(&self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

/// A level's two bodies of [`pipelined_int4`].
trait Int4Fused {
    /// Minimum and maximum of `x` folded with +0.0 by strict comparisons, and whether it holds a NaN.
    unsafe fn lo_hi_nan(x: &[f32]) -> (f32, f32, bool);
    /// Packed INT4 codes of `x[..32 k]` (the largest multiple of 32) with `(scale != 0, zero)` into
    /// `out[..16 k]` (the even code in the low nibble), and in the same loop the range of
    /// `next[..32 k]` (none when `next` is shorter), prefetching `ahead`: returns `32 k` and how
    /// much of `next` it took with its range.
    unsafe fn quant(
        x: &[f32],
        scale: f32,
        zero: f32,
        out: &mut [u8],
        next: &[f32],
        ahead: &[f32],
    ) -> (usize, (usize, (f32, f32, bool)));
}

/// The 4-bit quantizer on whole rows (as many as `scales` and `zeros` hold), through [`pipelined`]:
/// each group's range is taken by the codes loop of an earlier group. `accept(lo, hi, has_nan)` (the
/// streaming form's check) sees each group's range before any of its codes; on a rejection the loop
/// stops and returns false. Groups start on a byte (an even group length, as the dispatch in `kbit`
/// ensures). Inlined into each level's `int4_quant_rows`, compiled for its features.
#[inline(always)]
unsafe fn pipelined_int4<B: Int4Fused, A: Fn(f32, f32, bool) -> bool>(
    src: &[f32],
    shape: crate::kernels::Shape,
    dst: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [u8],
    accept: Option<&A>,
) -> bool {
    let (cols, glen, gpr) = (shape.cols, shape.group_len(), shape.groups_per_row());
    let row_bytes = crate::kernels::kbit::packed_row_bytes(cols, 4);
    let rows = (scales.len().min(zeros.len()) / gpr).min(dst.len() / row_bytes);
    let mut q = Int4::<B, A> {
        src,
        dst,
        scales,
        zeros,
        row_bytes,
        accept,
        level: std::marker::PhantomData,
    };
    pipelined(src, cols, glen, rows * gpr, &mut q)
}

/// INT4 as a [`Pipeline`], with a level's bodies `B`: see [`pipelined_int4`].
struct Int4<'a, B, A> {
    src: &'a [f32],
    dst: &'a mut [u8],
    scales: &'a mut [f32],
    zeros: &'a mut [u8],
    row_bytes: usize,
    accept: Option<&'a A>,
    level: std::marker::PhantomData<B>,
}

impl<B: Int4Fused, A: Fn(f32, f32, bool) -> bool> Pipeline for Int4<'_, B, A> {
    const LATE: bool = true;
    type Measure = (f32, f32, bool);
    type Params = (f32, f32);

    #[inline(always)]
    unsafe fn measure(&self, x: &[f32]) -> (f32, f32, bool) {
        B::lo_hi_nan(x)
    }

    #[inline(always)]
    fn fold((mut lo, mut hi, mut nan): (f32, f32, bool), rest: &[f32]) -> (f32, f32, bool) {
        for &v in rest {
            lo = if v < lo { v } else { lo };
            hi = if v > hi { v } else { hi };
            nan |= v.is_nan();
        }
        (lo, hi, nan)
    }

    #[inline(always)]
    fn params(&mut self, i: usize, (lo, hi, nan): (f32, f32, bool)) -> Option<(f32, f32)> {
        if self.accept.is_some_and(|accept| !accept(lo, hi, nan)) {
            return None;
        }
        let (scale, zero) = crate::kernels::kbit::asym_params(lo, hi, 4);
        self.scales[i] = scale;
        self.zeros[i] = zero as u8;
        Some((scale, zero))
    }

    #[inline(always)]
    unsafe fn codes(
        &mut self,
        g: &Group,
        p: std::ops::Range<usize>,
        (scale, zero): (f32, f32),
        next: &[f32],
        ahead: &[f32],
    ) -> (usize, (f32, f32, bool)) {
        // `p` is the group, or a piece of it at an even offset (so on a byte).
        let b0 = g.row * self.row_bytes + (p.start - g.row_start) / 2;
        let x = &self.src[p.clone()];
        let bytes = &mut self.dst[b0..b0 + p.len().div_ceil(2)];
        let (done, taken) = if scale == 0.0 {
            (0, (0, (0.0, 0.0, false)))
        } else {
            B::quant(x, scale, zero, bytes, next, ahead)
        };
        crate::kernels::kbit::int4_group_tail(x, done, scale, zero, bytes);
        taken
    }
}

/// AVX-512 (F, BW, VL) bodies: 16 lanes, masked loads and stores for the tails.
pub(crate) mod avx512 {
    use super::{pipelined_groups, pipelined_int4, prefetch, Fp8Spec, Int4Fused};
    use std::arch::x86_64::*;

    #[inline(always)]
    fn tail_mask(k: usize) -> __mmask16 {
        ((1u32 << k) - 1) as __mmask16
    }

    /// Largest sign-cleared bit pattern of `x` (0 for an empty slice).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn absmax_bits(x: &[f32]) -> u32 {
        absmax_bits_body(x)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn absmax_bits_body(x: &[f32]) -> u32 {
        let p = x.as_ptr();
        let n = x.len();
        let m = _mm512_set1_epi32(0x7fff_ffff);
        let ld = |i: usize| _mm512_and_si512(_mm512_castps_si512(_mm512_loadu_ps(p.add(i))), m);
        let (mut a0, mut a1, mut a2, mut a3) = (
            _mm512_setzero_si512(),
            _mm512_setzero_si512(),
            _mm512_setzero_si512(),
            _mm512_setzero_si512(),
        );
        let mut i = 0;
        while i + 64 <= n {
            a0 = _mm512_max_epu32(a0, ld(i));
            a1 = _mm512_max_epu32(a1, ld(i + 16));
            a2 = _mm512_max_epu32(a2, ld(i + 32));
            a3 = _mm512_max_epu32(a3, ld(i + 48));
            i += 64;
        }
        while i + 16 <= n {
            a0 = _mm512_max_epu32(a0, ld(i));
            i += 16;
        }
        if i < n {
            let v = _mm512_castps_si512(_mm512_maskz_loadu_ps(tail_mask(n - i), p.add(i)));
            a1 = _mm512_max_epu32(a1, _mm512_and_si512(v, m));
        }
        let a = _mm512_max_epu32(_mm512_max_epu32(a0, a1), _mm512_max_epu32(a2, a3));
        _mm512_reduce_max_epu32(a)
    }

    /// INT8 codes of one group with scale `s != 0` (all of `x`; `out.len() >= x.len()`).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn int8_quant(x: &[f32], s: f32, out: &mut [i8]) {
        int8_quant_body(x, s, out)
    }

    /// The codes by division (see the module docs), the tail by masked loads and stores.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn int8_quant_body(x: &[f32], s: f32, out: &mut [i8]) {
        let n = x.len();
        assert!(out.len() >= n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let code = int8_code(s);
        let mut i = 0;
        while i + 16 <= n {
            let q = code(_mm512_loadu_ps(xp.add(i)));
            _mm_storeu_si128(op.add(i) as *mut __m128i, q);
            i += 16;
        }
        if i < n {
            let k = tail_mask(n - i);
            let q = code(_mm512_maskz_loadu_ps(k, xp.add(i)));
            _mm_mask_storeu_epi8(op.add(i), k, q);
        }
    }

    /// `v -> round_half_even(clamp(v / s, -127, 127))` as 16 bytes, for `s` the absmax / 127 of a
    /// group holding `v` (nonzero).
    ///
    /// The portable code clamps, then rounds. The bounds are integers, so clamping commutes with
    /// rounding: the codes are the rounded quotients clamped, here in the integer lanes (the
    /// narrowing `vpmovsdb` saturates at 127, `max` lifts -128), instead of two float clamps per 16
    /// lanes. The quotients are small, so the conversion is exact: |v / s| <= 127 plus the rounding
    /// of `s`, at most 190.5 even where `s` is a few subnormal steps.
    #[inline(always)]
    unsafe fn int8_code(s: f32) -> impl Fn(__m512) -> __m128i {
        let vs = _mm512_set1_ps(s);
        let minus_127 = _mm_set1_epi8(-127);
        move |v: __m512| {
            let y = _mm512_div_ps(v, vs);
            let k =
                _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(y);
            _mm_max_epi8(_mm512_cvtsepi32_epi8(k), minus_127)
        }
    }

    /// The codes of `x[..64 k]` with scale `s != 0`, and in the same loop the absmax bits of
    /// `next[..64 k]` (the group quantized next), prefetching one cache line of `ahead` per 16 codes:
    /// see [`pipelined_groups`]. With `stream` and `out` 16-byte aligned the codes are written with
    /// non-temporal stores (the caller fences). Returns `64 k` (the tail is the caller's) and
    /// [`NextAbsmax::taken`].
    #[inline(always)]
    unsafe fn int8_quant_fused(
        x: &[f32],
        s: f32,
        out: &mut [i8],
        next: &[f32],
        ahead: &[f32],
        stream: bool,
    ) -> (usize, (usize, u32)) {
        let n = x.len() / 64 * 64;
        assert!(out.len() >= n);
        let mut next_abs = NextAbsmax::new(next, n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let code = int8_code(s);
        let stream = stream && op as usize % 16 == 0;
        let mut i = 0;
        while i < n {
            for k in [0, 16, 32, 48] {
                prefetch(ahead, i + k);
            }
            next_abs.step(i);
            for k in [0, 16, 32, 48] {
                let q = code(_mm512_loadu_ps(xp.add(i + k)));
                let p = op.add(i + k) as *mut __m128i;
                if stream {
                    _mm_stream_si128(p, q);
                } else {
                    _mm_storeu_si128(p, q);
                }
            }
            i += 64;
        }
        (n, next_abs.taken())
    }

    /// An absmax taken 64 elements at a time inside another loop (see [`int8_quant_fused`]): four
    /// accumulators of sign-cleared bit patterns.
    struct NextAbsmax {
        p: *const f32,
        n: usize,
        on: bool,
        acc: [__m512i; 4],
    }

    impl NextAbsmax {
        /// Over `next[..n]` (`n` a multiple of 64); off (bits 0) when `next` is shorter.
        #[inline(always)]
        unsafe fn new(next: &[f32], n: usize) -> Self {
            Self {
                p: next.as_ptr(),
                n,
                on: next.len() >= n && n > 0,
                acc: [_mm512_setzero_si512(); 4],
            }
        }

        /// Takes `next[i..i + 64]` in (`i + 64 <= n`).
        #[inline(always)]
        unsafe fn step(&mut self, i: usize) {
            if self.on {
                let m = _mm512_set1_epi32(0x7fff_ffff);
                for (k, a) in self.acc.iter_mut().enumerate() {
                    let v = _mm512_castps_si512(_mm512_loadu_ps(self.p.add(i + 16 * k)));
                    *a = _mm512_max_epu32(*a, _mm512_and_si512(v, m));
                }
            }
        }

        /// How many elements of `next` were taken (`n`, or 0 when off), and their absmax bits.
        #[inline(always)]
        unsafe fn taken(&self) -> (usize, u32) {
            if !self.on {
                return (0, 0);
            }
            let [a0, a1, a2, a3] = self.acc;
            let a = _mm512_max_epu32(_mm512_max_epu32(a0, a1), _mm512_max_epu32(a2, a3));
            (self.n, _mm512_reduce_max_epu32(a))
        }
    }

    /// `out[i] = q[i] * s` (`out.len() >= q.len()`); `stream`: see [`store_f32_blocks`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn int8_dequant(q: &[i8], s: f32, out: &mut [f32], stream: bool) {
        int8_dequant_body(q, s, out, stream)
    }

    /// Writes `n` f32 at `out`: `block(i, k)` gives elements `i .. i + 16` under the lane mask `k`
    /// (lanes outside it are not stored, so `block` must not read inputs past them either). With
    /// `stream`, the 16-element blocks from the first 16-byte boundary on are written with
    /// non-temporal 16-byte stores (memory then does not read each output line before it is
    /// written; see [`crate::kernels::STREAM_STORES_MIN`]); the up to 3 elements before that
    /// boundary and the tail with ordinary masked stores. The caller fences (the dequantizers stream
    /// many short runs and fence once at the end).
    #[inline(always)]
    unsafe fn store_f32_blocks(
        out: *mut f32,
        n: usize,
        stream: bool,
        block: impl Fn(usize, __mmask16) -> __m512,
    ) {
        let mut i = 0;
        if stream {
            let head = ((16 - out as usize % 16) % 16 / 4).min(n);
            if head > 0 {
                let k = tail_mask(head);
                _mm512_mask_storeu_ps(out, k, block(0, k));
                i = head;
            }
            while i + 16 <= n {
                let v = _mm512_castps_si512(block(i, 0xffff));
                let p = out.add(i) as *mut __m128i;
                _mm_stream_si128(p, _mm512_extracti32x4_epi32::<0>(v));
                _mm_stream_si128(p.add(1), _mm512_extracti32x4_epi32::<1>(v));
                _mm_stream_si128(p.add(2), _mm512_extracti32x4_epi32::<2>(v));
                _mm_stream_si128(p.add(3), _mm512_extracti32x4_epi32::<3>(v));
                i += 16;
            }
        } else {
            while i + 16 <= n {
                _mm512_storeu_ps(out.add(i), block(i, 0xffff));
                i += 16;
            }
        }
        if i < n {
            let k = tail_mask(n - i);
            _mm512_mask_storeu_ps(out.add(i), k, block(i, k));
        }
    }

    /// [`store_f32_blocks`] for a whole output written in one run (the casts): streams when it is
    /// large (`n >= STREAM_STORES_MIN`), and then fences itself.
    #[inline(always)]
    unsafe fn store_f32_run(out: *mut f32, n: usize, block: impl Fn(usize, __mmask16) -> __m512) {
        let stream = n >= crate::kernels::STREAM_STORES_MIN;
        store_f32_blocks(out, n, stream, block);
        if stream {
            _mm_sfence();
        }
    }

    /// Writes a whole output of `n` codes of `SIZE` bytes (1 or 2) at `out`, as [`store_f32_run`]:
    /// `block(i, k)` gives elements `i .. i + 16` in its low `16 * SIZE` bytes under the lane mask
    /// `k`; from `STREAM_STORES_MIN` elements on, the blocks from the first 16-byte boundary are
    /// written with non-temporal 16-byte stores and the run is fenced.
    #[inline(always)]
    unsafe fn store_code_run<const SIZE: usize>(
        out: *mut u8,
        n: usize,
        block: impl Fn(usize, __mmask16) -> __m256i,
    ) {
        let masked = |i: usize, k: __mmask16| {
            let v = block(i, k);
            if SIZE == 1 {
                _mm_mask_storeu_epi8(out.add(i) as *mut i8, k, _mm256_castsi256_si128(v));
            } else {
                _mm256_mask_storeu_epi16(out.add(2 * i) as *mut i16, k, v);
            }
        };
        let stream = n >= crate::kernels::STREAM_STORES_MIN;
        let mut i = 0;
        if stream {
            let head = ((16 - out as usize % 16) % 16 / SIZE).min(n);
            if head > 0 {
                masked(0, tail_mask(head));
                i = head;
            }
            while i + 16 <= n {
                let (v, p) = (block(i, 0xffff), out.add(SIZE * i) as *mut __m128i);
                _mm_stream_si128(p, _mm256_castsi256_si128(v));
                if SIZE == 2 {
                    _mm_stream_si128(p.add(1), _mm256_extracti128_si256::<1>(v));
                }
                i += 16;
            }
        } else {
            while i + 16 <= n {
                let v = block(i, 0xffff);
                if SIZE == 1 {
                    _mm_storeu_si128(out.add(i) as *mut __m128i, _mm256_castsi256_si128(v));
                } else {
                    _mm256_storeu_si256(out.add(2 * i) as *mut __m256i, v);
                }
                i += 16;
            }
        }
        if i < n {
            masked(i, tail_mask(n - i));
        }
        if stream {
            _mm_sfence();
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn int8_dequant_body(q: &[i8], s: f32, out: &mut [f32], stream: bool) {
        let n = q.len();
        assert!(out.len() >= n);
        let (qp, op) = (q.as_ptr(), out.as_mut_ptr());
        let vs = _mm512_set1_ps(s);
        let block = |i: usize, k: __mmask16| {
            let c = if k == 0xffff {
                _mm_loadu_si128(qp.add(i) as *const __m128i)
            } else {
                _mm_maskz_loadu_epi8(k, qp.add(i))
            };
            _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c)), vs)
        };
        store_f32_blocks(op, n, stream, block)
    }

    /// Minimum and maximum folded with +0.0, by strict comparisons (see `kbit::lo_hi_fast`).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn lo_hi(x: &[f32]) -> (f32, f32) {
        lo_hi_body(x)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn lo_hi_body(x: &[f32]) -> (f32, f32) {
        let (lo, hi, _) = lo_hi_nan_body::<false>(x);
        (lo, hi)
    }

    /// `lo_hi_body`, and (with `NAN`) whether `x` holds a NaN: an unordered comparison per pair of
    /// vectors, in the same pass.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn lo_hi_nan_body<const NAN: bool>(x: &[f32]) -> (f32, f32, bool) {
        let p = x.as_ptr();
        let n = x.len();
        let (mut lo0, mut lo1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let (mut hi0, mut hi1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut nan: __mmask16 = 0;
        let mut i = 0;
        while i + 32 <= n {
            let (v0, v1) = (_mm512_loadu_ps(p.add(i)), _mm512_loadu_ps(p.add(i + 16)));
            // min(v, acc) = v < acc ? v : acc; max(v, acc) = v > acc ? v : acc.
            lo0 = _mm512_min_ps(v0, lo0);
            hi0 = _mm512_max_ps(v0, hi0);
            lo1 = _mm512_min_ps(v1, lo1);
            hi1 = _mm512_max_ps(v1, hi1);
            if NAN {
                nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v0, v1);
            }
            i += 32;
        }
        while i < n {
            // Masked-off lanes load +0.0, which never replaces an accumulator (they start at +0.0).
            let v = _mm512_maskz_loadu_ps(tail_mask((n - i).min(16)), p.add(i));
            lo0 = _mm512_min_ps(v, lo0);
            hi0 = _mm512_max_ps(v, hi0);
            if NAN {
                nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            }
            i += 16;
        }
        // Reductions in any order: the values are the minimum and maximum, whatever the order; only
        // the sign of a zero result could differ, and `asym_params` maps both zeros to +0.0.
        let lo = _mm512_reduce_min_ps(_mm512_min_ps(lo1, lo0));
        let hi = _mm512_reduce_max_ps(_mm512_max_ps(hi1, hi0));
        (lo + 0.0, hi + 0.0, nan != 0)
    }

    /// Packed INT4 codes of `x[..32 * k]` (the largest multiple of 32) with `(scale != 0, zero)`, into
    /// `out[..16 * k]`, two codes a byte (the even one in the low nibble), and in the same loop the
    /// range of `next[..32 * k]`, prefetching `ahead` (see [`super::Int4Fused::quant`]).
    #[inline(always)]
    unsafe fn int4_quant_body(
        x: &[f32],
        scale: f32,
        zero: f32,
        out: &mut [u8],
        next: &[f32],
        ahead: &[f32],
    ) -> (usize, (usize, (f32, f32, bool))) {
        let n = x.len() / 32 * 32;
        assert!(out.len() >= n / 2);
        let mut next_range = NextRange::new(next, n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let vs = _mm512_set1_ps(scale);
        let vz = _mm512_set1_epi32(zero as i32);
        let (zeros, fifteen) = (_mm256_setzero_si256(), _mm256_set1_epi8(15));
        // maddubs with bytes (1, 16): even code + 16 * odd code in each 16-bit lane.
        let weights = _mm256_set1_epi16(0x1001);
        // As in the AVX2 body: the codes are round(x / s) + zero clamped to [0, 15] in the integer
        // lanes (the quotients are small, at most 22.5 in magnitude, so the conversion and the
        // saturating narrowing `vpmovsdb` are exact), instead of two float clamps per 16 lanes.
        let codes = |v: __m512| {
            let y = _mm512_div_ps(v, vs);
            let k =
                _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(y);
            _mm512_cvtsepi32_epi8(_mm512_add_epi32(k, vz))
        };
        let mut i = 0;
        while i < n {
            prefetch(ahead, i);
            prefetch(ahead, i + 16);
            next_range.step(i);
            let c0 = codes(_mm512_loadu_ps(xp.add(i)));
            let c1 = codes(_mm512_loadu_ps(xp.add(i + 16)));
            let c = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(c0), c1);
            let c = _mm256_min_epu8(_mm256_max_epi8(c, zeros), fifteen);
            let pairs = _mm256_maddubs_epi16(c, weights);
            _mm_storeu_si128(op.add(i / 2) as *mut __m128i, _mm256_cvtepi16_epi8(pairs));
            i += 32;
        }
        (n, next_range.taken())
    }

    /// A range (minimum and maximum from +0.0, by strict comparisons, and whether a NaN was seen)
    /// taken 32 elements at a time inside another loop, as [`NextAbsmax`].
    struct NextRange {
        p: *const f32,
        n: usize,
        on: bool,
        lo: [__m512; 2],
        hi: [__m512; 2],
        nan: __mmask16,
    }

    impl NextRange {
        /// Over `next[..n]` (`n` a multiple of 32); off when `next` is shorter.
        #[inline(always)]
        unsafe fn new(next: &[f32], n: usize) -> Self {
            let z = _mm512_setzero_ps();
            Self {
                p: next.as_ptr(),
                n,
                on: next.len() >= n && n > 0,
                lo: [z; 2],
                hi: [z; 2],
                nan: 0,
            }
        }

        /// Takes `next[i..i + 32]` in (`i + 32 <= n`).
        #[inline(always)]
        unsafe fn step(&mut self, i: usize) {
            if self.on {
                let (v0, v1) = (
                    _mm512_loadu_ps(self.p.add(i)),
                    _mm512_loadu_ps(self.p.add(i + 16)),
                );
                // min(v, acc) = v < acc ? v : acc: a NaN lane never replaces the accumulator.
                self.lo[0] = _mm512_min_ps(v0, self.lo[0]);
                self.hi[0] = _mm512_max_ps(v0, self.hi[0]);
                self.lo[1] = _mm512_min_ps(v1, self.lo[1]);
                self.hi[1] = _mm512_max_ps(v1, self.hi[1]);
                self.nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v0, v1);
            }
        }

        /// How many elements of `next` were taken (`n`, or 0 when off), and their range.
        #[inline(always)]
        unsafe fn taken(&self) -> (usize, (f32, f32, bool)) {
            if !self.on {
                return (0, (0.0, 0.0, false));
            }
            // In any order, as in `lo_hi_nan_body`: only a zero's sign could differ.
            let lo = _mm512_reduce_min_ps(_mm512_min_ps(self.lo[1], self.lo[0]));
            let hi = _mm512_reduce_max_ps(_mm512_max_ps(self.hi[1], self.hi[0]));
            (self.n, (lo + 0.0, hi + 0.0, self.nan != 0))
        }
    }

    /// `out[..32 * k] = (code - zero) * scale` of the packed INT4 codes `src[..16 * k]`, for the largest
    /// `32 * k <= out.len()`; returns `32 * k`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    /// `stream`: see [`store_f32_blocks`] (only when `out` is 16-byte aligned, so that every block
    /// starts on a byte of `src`).
    pub(crate) unsafe fn int4_dequant(
        src: &[u8],
        scale: f32,
        zero: f32,
        out: &mut [f32],
        stream: bool,
    ) -> usize {
        int4_dequant_body(src, scale, zero, out, stream)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn int4_dequant_body(
        src: &[u8],
        scale: f32,
        zero: f32,
        out: &mut [f32],
        stream: bool,
    ) -> usize {
        let n = out.len() / 32 * 32;
        assert!(src.len() >= n / 2);
        let (sp, op) = (src.as_ptr(), out.as_mut_ptr());
        let vs = _mm512_set1_ps(scale);
        let vz = _mm512_set1_ps(zero);
        let m = _mm_set1_epi8(0x0f);
        // 16 codes from the 8 bytes at `i / 2` (`i` a multiple of 16, `i + 16 <= n`: never masked,
        // as `n` is a multiple of 32 and the stream starts at 0 when `out` is aligned).
        let block = |i: usize, _: __mmask16| {
            let b = _mm_loadl_epi64(sp.add(i / 2) as *const __m128i);
            let lo = _mm_and_si128(b, m);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(b), m);
            let f = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)));
            _mm512_mul_ps(_mm512_sub_ps(f, vz), vs)
        };
        store_f32_blocks(op, n, stream && op as usize % 16 == 0, block);
        n
    }
    /// FP8 codes of `x` (divided by `s` first when `DIV`), by the AVX2 encoder's exact route
    /// (rounding by addition, `avx2::Fp8Lanes`), 16 lanes at a time; a select for NaN only in the
    /// plain casts (`DIV`: the scaled quantizers, whose inputs are finite, have no NaN to encode).
    /// All of `x`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn fp8_encode<const DIV: bool>(
        x: &[f32],
        s: f32,
        f: Fp8Spec,
        out: &mut [u8],
    ) {
        fp8_encode_body::<DIV>(x, s, f, out)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn fp8_encode_body<const DIV: bool>(x: &[f32], s: f32, f: Fp8Spec, out: &mut [u8]) {
        fp8_encode_run::<DIV>(&Fp8Lanes::new(f, s), x, out)
    }

    /// The codes of all of `x` by `enc` (`out.len() >= x.len()`): streamed when large (the plain
    /// casts), masked stores for the tail.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn fp8_encode_run<const DIV: bool>(enc: &Fp8Lanes, x: &[f32], out: &mut [u8]) {
        let n = x.len();
        assert!(out.len() >= n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let block = |i: usize, k: __mmask16| {
            let c = enc.code::<DIV, false>(_mm512_maskz_loadu_ps(k, xp.add(i)));
            _mm256_castsi128_si256(_mm512_cvtepi32_epi8(c))
        };
        store_code_run::<1>(op, n, block);
    }

    /// The FP8 encoder's constants for one format and scale, in 16 lanes: rounding by addition, as
    /// the AVX2 encoder (see `avx2::Fp8Lanes`, which derives it). A struct with an
    /// `#[inline(always)]` method for the reason given there: a closure returned for it (as
    /// `int8_code` is) ran the scaled quantizer at 0.03 of the ceiling (Zen 4; as if kept out of
    /// line, which was not checked in the assembly).
    #[derive(Clone, Copy)]
    struct Fp8Lanes {
        vs: __m512,
        abs: __m512i,
        exp_mask: __m512i,
        top: __m512i,
        floor: __m512i,
        to_c: __m512i,
        c_shift: __m128i,
        offset: __m512i,
        overflow: __m512i,
        nan: __m512i,
        signbit: __m512i,
    }

    impl Fp8Lanes {
        #[inline(always)]
        unsafe fn new(f: Fp8Spec, s: f32) -> Self {
            debug_assert!(f.overflow == f.max || f.overflow == f.max + 1);
            let emin = 1 - f.bias as i32;
            let emax = (f.max >> f.man) as i32 - f.bias as i32;
            Self {
                vs: _mm512_set1_ps(s),
                abs: _mm512_set1_epi32(0x7fff_ffff),
                exp_mask: _mm512_set1_epi32(0x7f80_0000),
                top: _mm512_set1_epi32((127 + emax + 1) << 23),
                floor: _mm512_set1_epi32((127 + emin) << 23),
                to_c: _mm512_set1_epi32(((23 - f.man) << 23) as i32),
                c_shift: _mm_cvtsi32_si128((23 - f.man) as i32),
                offset: _mm512_set1_epi32((emin + 150 - f.man as i32) << f.man),
                overflow: _mm512_set1_epi32(f.overflow as i32),
                nan: _mm512_set1_epi32(f.nan as i32),
                signbit: _mm512_set1_epi32(0x80),
            }
        }

        /// The codes of `v` (`v / s` when `DIV`), one per i32 lane. `BOUNDED` (with `DIV` only):
        /// every `|v / s|` is at most the format's largest value plus one unit in the last place of
        /// an f32, so no code overflows and no clamp is needed (see [`BOUNDED_SCALE_MIN`]).
        #[inline(always)]
        unsafe fn code<const DIV: bool, const BOUNDED: bool>(&self, v: __m512) -> __m512i {
            let v = if DIV { _mm512_div_ps(v, self.vs) } else { v };
            let bits = _mm512_castps_si512(v);
            let a = _mm512_and_si512(bits, self.abs);
            let clamped = if BOUNDED {
                a
            } else {
                _mm512_min_epi32(a, self.top)
            };
            let c = _mm512_add_epi32(
                _mm512_max_epi32(_mm512_and_si512(clamped, self.exp_mask), self.floor),
                self.to_c,
            );
            let sum = _mm512_castps_si512(_mm512_add_ps(
                _mm512_castsi512_ps(clamped),
                _mm512_castsi512_ps(c),
            ));
            let mag = _mm512_sub_epi32(
                _mm512_add_epi32(_mm512_sub_epi32(sum, c), _mm512_srl_epi32(c, self.c_shift)),
                self.offset,
            );
            // One `min` is the overflow select (`overflow` is `max` or `max + 1`, and a code past
            // `max` is at least `max + 1`).
            let mag = if BOUNDED {
                mag
            } else {
                _mm512_min_epi32(mag, self.overflow)
            };
            // A scaled quantizer's input is finite (checked before its codes): no NaN to encode.
            let mag = if DIV {
                mag
            } else {
                let is_nan = _mm512_cmpgt_epi32_mask(a, self.exp_mask);
                _mm512_mask_blend_epi32(is_nan, mag, self.nan)
            };
            // mag | (bits >> 24 & 0x80): the sign into the code's top bit, one ternary-logic op.
            _mm512_ternarylogic_epi32::<0xf8>(mag, _mm512_srli_epi32::<24>(bits), self.signbit)
        }
    }

    /// The scaled FP8 codes of `x[..64 k]` (the encoder `enc` holds the scale), and in the same
    /// loop the absmax of `next[..64 k]`, prefetching `ahead`, as [`int8_quant_fused`] (ordinary
    /// stores: streamed, the codes measured no faster on Zen 4). Returns `64 k` and
    /// [`NextAbsmax::taken`]. Always inlined into the rows kernel, which builds the constants once,
    /// as at AVX2.
    #[inline(always)]
    unsafe fn fp8_scaled_fused<const BOUNDED: bool>(
        enc: &Fp8Lanes,
        x: &[f32],
        out: &mut [u8],
        next: &[f32],
        ahead: &[f32],
    ) -> (usize, (usize, u32)) {
        let n = x.len() / 64 * 64;
        assert!(out.len() >= n);
        let mut next_abs = NextAbsmax::new(next, n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let mut i = 0;
        while i < n {
            for k in [0, 16, 32, 48] {
                prefetch(ahead, i + k);
            }
            next_abs.step(i);
            for k in [0, 16, 32, 48] {
                let v = _mm512_loadu_ps(xp.add(i + k));
                let q = _mm512_cvtepi32_epi8(enc.code::<true, BOUNDED>(v));
                _mm_storeu_si128(op.add(i + k) as *mut __m128i, q);
            }
            i += 64;
        }
        (n, next_abs.taken())
    }

    /// f32 values of FP8 codes (times `s` when `MUL`): exactly the decode tables of `fp8.rs`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    /// `stream`: see [`store_f32_blocks`].
    pub(crate) unsafe fn fp8_decode<const MUL: bool>(
        q: &[u8],
        s: f32,
        f: Fp8Spec,
        out: &mut [f32],
        stream: bool,
    ) {
        fp8_decode_body::<MUL>(q, s, f, out, stream)
    }

    /// [`fp8_decode`] with `MUL` over whole rows of `cols` codes in groups of `glen`, group `k` of
    /// row `r` scaled by `scales[r * ceil(cols / glen) + k]`: one call for many groups (a call per
    /// group rebuilt the decoder's constants every 128 values). `q` and `out` hold whole rows.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn fp8_decode_groups(
        q: &[u8],
        scales: &[f32],
        (cols, glen): (usize, usize),
        f: Fp8Spec,
        out: &mut [f32],
        stream: bool,
    ) {
        let gpr = cols.div_ceil(glen);
        let rows = q.chunks_exact(cols).zip(out.chunks_exact_mut(cols));
        for ((q_row, x_row), s_row) in rows.zip(scales.chunks_exact(gpr)) {
            for ((q, x), &s) in q_row.chunks(glen).zip(x_row.chunks_mut(glen)).zip(s_row) {
                fp8_decode_body::<true>(q, s, f, x, stream);
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn fp8_decode_body<const MUL: bool>(
        q: &[u8],
        s: f32,
        f: Fp8Spec,
        out: &mut [f32],
        stream: bool,
    ) {
        let n = q.len();
        assert!(out.len() >= n);
        let (qp, op) = (q.as_ptr(), out.as_mut_ptr());
        // Through f16 (`vcvtph2ps`, exact), as the AVX2 body: the code's magnitude bits shifted to
        // f16's field boundary are an f16 worth 2^(bias - 15) times the code's value, subnormals
        // included, scaled back by 2^(15 - bias) in f32; NaN codes become f16 0x7E00 (f32
        // 0x7FC00000, which the multiplications keep), E5M2's infinity is f16's. The lanes are
        // 16-bit until the conversion (half-width vectors), where building the f32 bits in 32-bit
        // lanes took twice as many full-width operations.
        let shift = _mm_cvtsi32_si128((10 - f.man) as i32);
        let mag_mask = _mm256_set1_epi16((0x7f << (10 - f.man)) as i16);
        let sign_mask = _mm256_set1_epi16(0x8000u16 as i16);
        // The largest magnitude that is not NaN: E4M3's `max`, E5M2's infinity (the code after it).
        let last = if f.ieee { f.max + 1 } else { f.max };
        let last = _mm256_set1_epi16((last << (10 - f.man)) as i16);
        let nan = _mm256_set1_epi16(0x7e00);
        let rebias = _mm512_set1_ps(f32::from_bits((127 + 15 - f.bias) << 23));
        let vs = _mm512_set1_ps(s);
        let block = |i: usize, k: __mmask16| {
            let c = if k == 0xffff {
                _mm_loadu_si128(qp.add(i) as *const __m128i)
            } else {
                _mm_maskz_loadu_epi8(k, qp.add(i) as *const i8)
            };
            let w = _mm256_cvtepu8_epi16(c);
            let mag = _mm256_and_si256(_mm256_sll_epi16(w, shift), mag_mask);
            let mag = _mm256_mask_blend_epi16(_mm256_cmpgt_epi16_mask(mag, last), mag, nan);
            let h = _mm256_or_si256(mag, _mm256_and_si256(_mm256_slli_epi16::<8>(w), sign_mask));
            let v = _mm512_mul_ps(_mm512_cvtph_ps(h), rebias);
            if MUL {
                _mm512_mul_ps(v, vs)
            } else {
                v
            }
        };
        store_f32_blocks(op, n, stream, block)
    }

    /// f32 -> f16 bits (`vcvtps2ph`, round to nearest even; the F16C conversion `half` uses).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn f32_to_f16(x: &[f32], out: &mut [u16]) {
        f32_to_f16_body(x, out)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn f32_to_f16_body(x: &[f32], out: &mut [u16]) {
        let n = x.len();
        assert!(out.len() >= n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let block = |i: usize, k: __mmask16| {
            _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm512_maskz_loadu_ps(k, xp.add(i)))
        };
        store_code_run::<2>(op as *mut u8, n, block)
    }

    /// f16 bits -> f32 (`vcvtph2ps`, exact; NaN quieted).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn f16_to_f32(h: &[u16], out: &mut [f32]) {
        f16_to_f32_body(h, out)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn f16_to_f32_body(h: &[u16], out: &mut [f32]) {
        let n = h.len();
        assert!(out.len() >= n);
        let (hp, op) = (h.as_ptr(), out.as_mut_ptr());
        let block = |i: usize, k: __mmask16| {
            _mm512_cvtph_ps(if k == 0xffff {
                _mm256_loadu_si256(hp.add(i) as *const __m256i)
            } else {
                _mm256_maskz_loadu_epi16(k, hp.add(i) as *const i16)
            })
        };
        store_f32_run(op, n, block)
    }

    /// f32 -> bf16 bits: `(x + 0x7fff + ((x >> 16) & 1)) >> 16`, NaN `(x >> 16) | 0x40`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn f32_to_bf16(x: &[f32], out: &mut [u16]) {
        f32_to_bf16_body(x, out)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn f32_to_bf16_body(x: &[f32], out: &mut [u16]) {
        let n = x.len();
        assert!(out.len() >= n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let conv = |v: __m512| {
            let b = _mm512_castps_si512(v);
            let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(1));
            let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(
                _mm512_add_epi32(b, _mm512_set1_epi32(0x7fff)),
                odd,
            ));
            let nan = _mm512_or_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(0x40));
            let is_nan = _mm512_cmpgt_epu32_mask(
                _mm512_and_si512(b, _mm512_set1_epi32(0x7fff_ffff)),
                _mm512_set1_epi32(0x7f80_0000),
            );
            _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(is_nan, rounded, nan))
        };
        let block = |i: usize, k: __mmask16| conv(_mm512_maskz_loadu_ps(k, xp.add(i)));
        store_code_run::<2>(op as *mut u8, n, block)
    }

    /// bf16 bits -> f32: `(h | quiet) << 16`, `quiet = 0x40` for NaN.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn bf16_to_f32(h: &[u16], out: &mut [f32]) {
        bf16_to_f32_body(h, out)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn bf16_to_f32_body(h: &[u16], out: &mut [f32]) {
        let n = h.len();
        assert!(out.len() >= n);
        let (hp, op) = (h.as_ptr(), out.as_mut_ptr());
        let conv = |w: __m256i| {
            let v = _mm512_cvtepu16_epi32(w);
            let is_nan = _mm512_cmpgt_epu32_mask(
                _mm512_and_si512(v, _mm512_set1_epi32(0x7fff)),
                _mm512_set1_epi32(0x7f80),
            );
            let v = _mm512_mask_or_epi32(v, is_nan, v, _mm512_set1_epi32(0x40));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(v))
        };
        let block = |i: usize, k: __mmask16| {
            conv(if k == 0xffff {
                _mm256_loadu_si256(hp.add(i) as *const __m256i)
            } else {
                _mm256_maskz_loadu_epi16(k, hp.add(i) as *const i16)
            })
        };
        store_f32_run(op, n, block)
    }
    /// INT8 codes and scales of whole rows (`src`: `k * cols` elements, groups of `glen`), in one
    /// function compiled for AVX-512 (no call per group), through [`pipelined_groups`]. Stops and
    /// returns false at the first group whose absmax `accept` rejects (the groups before it are
    /// written). `stream` (the whole output is large, see [`crate::kernels::STREAM_STORES_MIN`]):
    /// the codes are written with non-temporal stores, fenced before this returns.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn int8_quant_rows(
        src: &[f32],
        cols: usize,
        glen: usize,
        dst: &mut [i8],
        scales: &mut [f32],
        stream: bool,
        accept: impl Fn(f32) -> bool,
    ) -> bool {
        let all_accepted =
            pipelined_groups(src, cols, glen, scales, accept, Int8Rows { dst, stream });
        if stream {
            _mm_sfence();
        }
        all_accepted
    }

    /// The INT8 bodies of [`int8_quant_rows`].
    struct Int8Rows<'a> {
        dst: &'a mut [i8],
        stream: bool,
    }

    impl super::SymmetricBody for Int8Rows<'_> {
        const QMAX: f32 = 127.0;

        #[inline(always)]
        unsafe fn absmax_bits(x: &[f32]) -> u32 {
            absmax_bits_body(x)
        }

        #[inline(always)]
        unsafe fn codes(
            &mut self,
            x: &[f32],
            s: f32,
            r: std::ops::Range<usize>,
            next: &[f32],
            ahead: &[f32],
        ) -> (usize, u32) {
            let out = &mut self.dst[r];
            if s == 0.0 {
                out.fill(0);
                return (0, 0);
            }
            let (done, taken) = int8_quant_fused(x, s, out, next, ahead, self.stream);
            int8_quant_body(&x[done..], s, &mut out[done..]);
            taken
        }
    }

    /// FP8 E4M3 scaled codes and scales of whole rows, software-pipelined as [`int8_quant_rows`];
    /// `accept` as there.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn fp8_quant_rows(
        src: &[f32],
        cols: usize,
        glen: usize,
        dst: &mut [u8],
        scales: &mut [f32],
        accept: impl Fn(f32) -> bool,
    ) -> bool {
        // The constants once; each group sets its scale.
        let base = Fp8Lanes::new(crate::kernels::fp8::scaled_spec(), 1.0);
        pipelined_groups(src, cols, glen, scales, accept, Fp8Rows { dst, base })
    }

    /// The FP8 E4M3 bodies of [`fp8_quant_rows`].
    struct Fp8Rows<'a> {
        dst: &'a mut [u8],
        base: Fp8Lanes,
    }

    impl super::SymmetricBody for Fp8Rows<'_> {
        const QMAX: f32 = crate::kernels::fp8::E4M3_MAX;

        #[inline(always)]
        unsafe fn absmax_bits(x: &[f32]) -> u32 {
            absmax_bits_body(x)
        }

        #[inline(always)]
        unsafe fn codes(
            &mut self,
            x: &[f32],
            s: f32,
            r: std::ops::Range<usize>,
            next: &[f32],
            ahead: &[f32],
        ) -> (usize, u32) {
            let out = &mut self.dst[r];
            if s == 0.0 {
                out.fill(0);
                return (0, 0);
            }
            let enc = Fp8Lanes {
                vs: _mm512_set1_ps(s),
                ..self.base
            };
            let (done, taken) = if s >= super::BOUNDED_SCALE_MIN {
                fp8_scaled_fused::<true>(&enc, x, out, next, ahead)
            } else {
                fp8_scaled_fused::<false>(&enc, x, out, next, ahead)
            };
            // The tail (none when the group is a multiple of 64) with the group's encoder.
            fp8_encode_run::<true>(&enc, &x[done..], &mut out[done..]);
            taken
        }
    }

    /// The 4-bit quantizer on whole rows, compiled for AVX-512: [`super::pipelined_int4`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn int4_quant_rows<A: Fn(f32, f32, bool) -> bool>(
        src: &[f32],
        shape: crate::kernels::Shape,
        dst: &mut [u8],
        scales: &mut [f32],
        zeros: &mut [u8],
        accept: Option<&A>,
    ) -> bool {
        pipelined_int4::<Fused, A>(src, shape, dst, scales, zeros, accept)
    }

    /// The AVX-512 bodies of [`super::pipelined_int4`].
    struct Fused;

    impl Int4Fused for Fused {
        #[inline(always)]
        unsafe fn lo_hi_nan(x: &[f32]) -> (f32, f32, bool) {
            lo_hi_nan_body::<true>(x)
        }
        #[inline(always)]
        unsafe fn quant(
            x: &[f32],
            scale: f32,
            zero: f32,
            out: &mut [u8],
            next: &[f32],
            ahead: &[f32],
        ) -> (usize, (usize, (f32, f32, bool))) {
            int4_quant_body(x, scale, zero, out, next, ahead)
        }
    }
}

/// AVX2 bodies: 8 lanes; each function handles the largest multiple of its block and leaves the tail
/// to the portable code (it returns how many elements it did).
pub(crate) mod avx2 {
    use super::{pipelined_groups, pipelined_int4, prefetch, Fp8Spec, Int4Fused, PREFETCH_AHEAD};
    use std::arch::x86_64::*;

    use crate::kernels::STREAM_STORES_MIN;

    /// Writes `n` elements of `size` bytes at `out` in blocks of `step` elements, 32 bytes each,
    /// `block(i)` giving elements `i .. i + step`; returns how many were written (the largest
    /// multiple of `step` up to `n` with ordinary stores; with streaming stores, from the first 16-byte
    /// aligned address on, up to `step - 1` fewer, a misaligned first block written twice with the
    /// same bytes). Streams when `stream` (see [`STREAM_STORES_MIN`]) and `n >= step`.
    #[inline(always)]
    unsafe fn store_blocks_256(
        out: *mut u8,
        size: usize,
        n: usize,
        step: usize,
        stream: bool,
        block: impl Fn(usize) -> __m256i,
    ) -> usize {
        debug_assert_eq!(step * size, 32);
        let mut i = 0;
        if stream && n >= step {
            // From a 16-byte boundary (every large allocation has one), in 16-byte halves; the first
            // block with an ordinary store only when `out` is not aligned: a line written both ways
            // is slow (measured: dequantizing groups of 128, 0.11 of the write-bound loop).
            if out as usize % 16 != 0 {
                _mm256_storeu_si256(out as *mut __m256i, block(0));
                i = (16 - out as usize % 16) / size;
            }
            while i + step <= n {
                let (v, p) = (block(i), out.add(i * size) as *mut __m128i);
                _mm_stream_si128(p, _mm256_castsi256_si128(v));
                _mm_stream_si128(p.add(1), _mm256_extracti128_si256::<1>(v));
                i += step;
            }
            // A run that is the whole large output orders its stores itself; the dequantizers,
            // which stream many short runs, fence once at the end (`fence_streaming_stores`).
            if n >= STREAM_STORES_MIN {
                _mm_sfence();
            }
            return i;
        }
        while i + step <= n {
            _mm256_storeu_si256(out.add(i * size) as *mut __m256i, block(i));
            i += step;
        }
        i
    }

    /// Largest sign-cleared bit pattern of `x` (0 for an empty slice).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn absmax_bits(x: &[f32]) -> u32 {
        absmax_bits_body(x)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn absmax_bits_body(x: &[f32]) -> u32 {
        let p = x.as_ptr();
        let n = x.len();
        let m = _mm256_set1_epi32(0x7fff_ffff);
        let ld = |i: usize| _mm256_and_si256(_mm256_castps_si256(_mm256_loadu_ps(p.add(i))), m);
        let (mut a0, mut a1, mut a2, mut a3) = (
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
        );
        let mut i = 0;
        while i + 32 <= n {
            a0 = _mm256_max_epu32(a0, ld(i));
            a1 = _mm256_max_epu32(a1, ld(i + 8));
            a2 = _mm256_max_epu32(a2, ld(i + 16));
            a3 = _mm256_max_epu32(a3, ld(i + 24));
            i += 32;
        }
        while i + 8 <= n {
            a0 = _mm256_max_epu32(a0, ld(i));
            i += 8;
        }
        let a = _mm256_max_epu32(_mm256_max_epu32(a0, a1), _mm256_max_epu32(a2, a3));
        let mut lanes = [0u32; 8];
        _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, a);
        let mut r = lanes.into_iter().max().unwrap_or(0);
        for v in &x[i..] {
            r = r.max(v.to_bits() & 0x7fff_ffff);
        }
        r
    }

    /// INT8 codes of `x[..32 * k]` with scale `s != 0`; returns `32 * k` (the tail is the caller's).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn int8_quant(x: &[f32], s: f32, out: &mut [i8]) -> usize {
        int8_quant_body(x, s, out, &[], &[]).0
    }

    /// The codes of `x[..32 * k]`, and in the same loop the absmax bits of `next[..32 * k]` (the group
    /// quantized next), prefetching the two cache lines of `ahead` per 32 codes: see
    /// [`pipelined_groups`]. Returns `32 * k` and [`NextAbsmax::taken`].
    #[inline(always)]
    unsafe fn int8_quant_body(
        x: &[f32],
        s: f32,
        out: &mut [i8],
        next: &[f32],
        ahead: &[f32],
    ) -> (usize, (usize, u32)) {
        let n = x.len() / 32 * 32;
        assert!(out.len() >= n);
        let mut next_abs = NextAbsmax::new(next, n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let vs = _mm256_set1_ps(s);
        let minus_127 = _mm256_set1_epi8(-127);
        let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        // The portable code clamps `x / s` to [-127, 127], then rounds. The bounds are integers, so
        // clamping commutes with rounding: the codes are the rounded quotients clamped, here in the
        // integer lanes (the packs saturate at 127, `max` lifts -128), without the two float clamps
        // per 8 lanes. The quotients are small, so `cvtps2dq` and the 16-bit pack are exact: `s` is
        // the absmax / 127 of a group holding `x`, so |x / s| <= 127 plus the rounding of `s`, at most
        // 190.5 even where `s` is a few subnormal steps (it is nonzero here).
        let code = |i: usize| _mm256_cvtps_epi32(_mm256_div_ps(_mm256_loadu_ps(xp.add(i)), vs));
        let mut i = 0;
        while i < n {
            prefetch(ahead, i);
            prefetch(ahead, i + 16);
            next_abs.step(i);
            let ab = _mm256_packs_epi32(code(i), code(i + 8));
            let cd = _mm256_packs_epi32(code(i + 16), code(i + 24));
            let q = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), perm);
            let q = _mm256_max_epi8(q, minus_127);
            _mm256_storeu_si256(op.add(i) as *mut __m256i, q);
            i += 32;
        }
        (n, next_abs.taken())
    }

    /// `out[i] = q[i] * s` for a prefix of `q`; returns its length (see [`store_blocks_256`]).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn int8_dequant(q: &[i8], s: f32, out: &mut [f32], stream: bool) -> usize {
        int8_dequant_body(q, s, out, stream)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn int8_dequant_body(q: &[i8], s: f32, out: &mut [f32], stream: bool) -> usize {
        let n = q.len();
        assert!(out.len() >= n);
        let (qp, op) = (q.as_ptr(), out.as_mut_ptr());
        let vs = _mm256_set1_ps(s);
        let block = |i: usize| {
            let c = _mm256_cvtepi8_epi32(_mm_loadl_epi64(qp.add(i) as *const __m128i));
            _mm256_castps_si256(_mm256_mul_ps(_mm256_cvtepi32_ps(c), vs))
        };
        store_blocks_256(op as *mut u8, 4, n, 8, stream, block)
    }

    /// Minimum and maximum folded with +0.0, by strict comparisons (see `kbit::lo_hi_fast`).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn lo_hi(x: &[f32]) -> (f32, f32) {
        lo_hi_body(x)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn lo_hi_body(x: &[f32]) -> (f32, f32) {
        let (lo, hi, _) = lo_hi_nan_body::<false>(x);
        (lo, hi)
    }

    /// `lo_hi_body`, and (with `NAN`) whether `x` holds a NaN: an unordered comparison per pair of
    /// vectors, in the same pass.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn lo_hi_nan_body<const NAN: bool>(x: &[f32]) -> (f32, f32, bool) {
        let p = x.as_ptr();
        let n = x.len();
        let (mut lo0, mut lo1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (mut hi0, mut hi1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut nan = _mm256_setzero_ps();
        let mut i = 0;
        while i + 16 <= n {
            let (v0, v1) = (_mm256_loadu_ps(p.add(i)), _mm256_loadu_ps(p.add(i + 8)));
            lo0 = _mm256_min_ps(v0, lo0);
            hi0 = _mm256_max_ps(v0, hi0);
            lo1 = _mm256_min_ps(v1, lo1);
            hi1 = _mm256_max_ps(v1, hi1);
            if NAN {
                nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v0, v1));
            }
            i += 16;
        }
        let (mut l, mut h) = ([0f32; 16], [0f32; 16]);
        _mm256_storeu_ps(l.as_mut_ptr(), lo0);
        _mm256_storeu_ps(l.as_mut_ptr().add(8), lo1);
        _mm256_storeu_ps(h.as_mut_ptr(), hi0);
        _mm256_storeu_ps(h.as_mut_ptr().add(8), hi1);
        let (mut lo, mut hi) = super::fold_lo_hi(&l, &h);
        let mut has_nan = NAN && _mm256_movemask_ps(nan) != 0;
        for &v in &x[i..] {
            lo = if v < lo { v } else { lo };
            hi = if v > hi { v } else { hi };
            has_nan |= NAN && v.is_nan();
        }
        (lo, hi, has_nan)
    }

    /// Packed INT4 codes of `x[..32 * k]` (see the AVX-512 version), and in the same loop the range
    /// of `next[..32 * k]`, prefetching `ahead`, as [`int8_quant_body`]; returns `32 * k` and
    /// [`NextRange::taken`].
    #[inline(always)]
    unsafe fn int4_quant_body(
        x: &[f32],
        scale: f32,
        zero: f32,
        out: &mut [u8],
        next: &[f32],
        ahead: &[f32],
    ) -> (usize, (usize, (f32, f32, bool))) {
        let n = x.len() / 32 * 32;
        assert!(out.len() >= n / 2);
        let mut next_range = NextRange::new(next, n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let vs = _mm256_set1_ps(scale);
        let vz = _mm256_set1_epi32(zero as i32);
        let fifteen = _mm256_set1_epi8(15);
        let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        // maddubs with bytes (1, 16): even code + 16 * odd code in each 16-bit lane.
        let weights = _mm256_set1_epi16(0x1001);
        // The portable code clamps `x / s` to [-zero, 15 - zero], rounds, adds `zero`. The bounds are
        // integers, so clamping commutes with rounding (monotone, integers fixed): the code is also
        // round(x / s) + zero clamped to [0, 15], which is clamped here in the integer lanes (the packs
        // saturate below 0, `min` caps at 15), without the two float clamps per 8 lanes. The
        // quotients are small, so `cvtps2dq` and the 16-bit pack are exact: every x lies in
        // [lo, hi] with lo <= 0 <= hi, s = (hi - lo) / 15 rounded and nonzero, so |x / s| <= 15 plus
        // the rounding of s, at most 22.5 even where s is a few subnormal steps.
        let code = |i: usize| {
            let k = _mm256_cvtps_epi32(_mm256_div_ps(_mm256_loadu_ps(xp.add(i)), vs));
            _mm256_add_epi32(k, vz)
        };
        let mut i = 0;
        while i < n {
            prefetch(ahead, i);
            prefetch(ahead, i + 16);
            next_range.step(i);
            let ab = _mm256_packs_epi32(code(i), code(i + 8));
            let cd = _mm256_packs_epi32(code(i + 16), code(i + 24));
            let codes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd), perm);
            let pairs = _mm256_maddubs_epi16(_mm256_min_epu8(codes, fifteen), weights);
            let bytes = _mm_packus_epi16(
                _mm256_castsi256_si128(pairs),
                _mm256_extracti128_si256::<1>(pairs),
            );
            _mm_storeu_si128(op.add(i / 2) as *mut __m128i, bytes);
            i += 32;
        }
        (n, next_range.taken())
    }

    /// `out[i] = (code - zero) * scale` of the packed INT4 codes (two a byte, the even one in the
    /// low nibble) for a prefix of `out` (`src` holding its codes); returns its length (see
    /// [`store_blocks_256`]; `stream`: the whole output is large).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn int4_dequant(
        src: &[u8],
        scale: f32,
        zero: f32,
        out: &mut [f32],
        stream: bool,
    ) -> usize {
        int4_dequant_body(src, scale, zero, out, stream)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn int4_dequant_body(
        src: &[u8],
        scale: f32,
        zero: f32,
        out: &mut [f32],
        stream: bool,
    ) -> usize {
        let n = out.len().min(src.len() * 2) / 8 * 8;
        let (sp, op) = (src.as_ptr(), out.as_mut_ptr());
        let vs = _mm256_set1_ps(scale);
        let vz = _mm256_set1_ps(zero);
        let m = _mm_set1_epi8(0x0f);
        // Eight codes from four bytes: low nibbles and high nibbles interleaved.
        let block = |i: usize| {
            let b = _mm_cvtsi32_si128(std::ptr::read_unaligned(sp.add(i / 2) as *const i32));
            let lo = _mm_and_si128(b, m);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(b), m);
            let f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)));
            _mm256_castps_si256(_mm256_mul_ps(_mm256_sub_ps(f, vz), vs))
        };
        // A block starts on a byte of codes only at an even element: streaming starts at the first
        // 16-byte boundary of `out`, an even element when `out` is 8-byte aligned.
        let stream = stream && op as usize % 8 == 0;
        store_blocks_256(op as *mut u8, 4, n, 8, stream, block)
    }

    /// The FP8 encoder's constants for one format and scale, in 8 lanes.
    ///
    /// Rounding by addition: for |y| = m 2^e (1 <= m < 2), `|y| + 2^(e + 23 - man)` is rounded by the
    /// f32 addition (to nearest, ties to even) at 2^(e - man), the format's ulp at |y|, and its low
    /// significand bits are then the rounded |y| in those ulps (a carry into the next binade
    /// included). With e raised to the format's smallest normal exponent, the same addition rounds at
    /// the subnormal ulp. The code is those bits plus the exponent part: `bits(sum) - bits(c) +
    /// (bits(c) >> (23 - man)) - offset`, where `c = 2^(max(e, emin) + 23 - man)`. |y| is first
    /// clamped to 2^(emax + 1), which gives a code above `max` (overflow) and keeps `c` finite.
    ///
    /// A struct with `#[inline(always)]` methods rather than a closure: LLVM kept the closure (four
    /// calls a block, two loops) out of line, its vectors passed through memory, which made the
    /// encoder compute-bound at about 1.8 G elements/s even in L2 (measured on Zen 3).
    #[derive(Clone, Copy)]
    struct Fp8Lanes {
        vs: __m256,
        abs: __m256i,
        exp_mask: __m256i,
        top: __m256i,
        floor: __m256i,
        to_c: __m256i,
        c_shift: __m128i,
        offset: __m256i,
        overflow: __m256i,
        nan: __m256i,
        signbit: __m256i,
        perm: __m256i,
    }

    impl Fp8Lanes {
        #[inline(always)]
        unsafe fn new(f: Fp8Spec, s: f32) -> Self {
            // What the overflow select and the packed signs rest on (see the methods).
            debug_assert!(f.overflow == f.max || f.overflow == f.max + 1);
            debug_assert!(s > 0.0);
            let emin = 1 - f.bias as i32;
            let emax = (f.max >> f.man) as i32 - f.bias as i32;
            Self {
                vs: _mm256_set1_ps(s),
                abs: _mm256_set1_epi32(0x7fff_ffff),
                exp_mask: _mm256_set1_epi32(0x7f80_0000),
                top: _mm256_set1_epi32((127 + emax + 1) << 23),
                floor: _mm256_set1_epi32((127 + emin) << 23),
                to_c: _mm256_set1_epi32(((23 - f.man) << 23) as i32),
                c_shift: _mm_cvtsi32_si128((23 - f.man) as i32),
                offset: _mm256_set1_epi32((emin + 150 - f.man as i32) << f.man),
                overflow: _mm256_set1_epi32(f.overflow as i32),
                nan: _mm256_set1_epi32(f.nan as i32),
                signbit: _mm256_set1_epi8(0x80u8 as i8),
                perm: _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7),
            }
        }

        /// The magnitude codes of `p[..8]` (each divided by the scale first when `DIV`), one per i32
        /// lane; the signs are [`Self::codes_32`]'s.
        #[inline(always)]
        unsafe fn magnitudes_8<const DIV: bool, const BOUNDED: bool>(
            &self,
            p: *const f32,
        ) -> __m256i {
            let v = _mm256_loadu_ps(p);
            let v = if DIV { _mm256_div_ps(v, self.vs) } else { v };
            let a = _mm256_and_si256(_mm256_castps_si256(v), self.abs);
            // `BOUNDED`: no clamp, as in the AVX-512 encoder (see `BOUNDED_SCALE_MIN`).
            let clamped = if BOUNDED {
                a
            } else {
                _mm256_min_epi32(a, self.top)
            };
            let c = _mm256_add_epi32(
                _mm256_max_epi32(_mm256_and_si256(clamped, self.exp_mask), self.floor),
                self.to_c,
            );
            let sum = _mm256_castps_si256(_mm256_add_ps(
                _mm256_castsi256_ps(clamped),
                _mm256_castsi256_ps(c),
            ));
            let mag = _mm256_sub_epi32(
                _mm256_add_epi32(_mm256_sub_epi32(sum, c), _mm256_srl_epi32(c, self.c_shift)),
                self.offset,
            );
            // `overflow` is `max` (saturating) or `max + 1` (the first code past the finite ones),
            // and a code past `max` is at least `max + 1`: one `min` is the overflow select.
            let mag = if BOUNDED {
                mag
            } else {
                _mm256_min_epi32(mag, self.overflow)
            };
            // A quotient of finite values by a scale is finite (the quantizers check their inputs):
            // only the plain casts meet NaN.
            if DIV {
                mag
            } else {
                _mm256_blendv_epi8(mag, self.nan, _mm256_cmpgt_epi32(a, self.exp_mask))
            }
        }

        /// The codes of `p[..32]`, packed to bytes in order. The signs come from the inputs' bits
        /// packed with signed saturation, which keeps each one's sign in its byte's top bit (the
        /// scale is positive, so a quotient has its dividend's sign): three packs for 32 codes in
        /// place of a shift, a mask and an or for every 8.
        #[inline(always)]
        unsafe fn codes_32<const DIV: bool, const BOUNDED: bool>(&self, p: *const f32) -> __m256i {
            let m = |k: usize| self.magnitudes_8::<DIV, BOUNDED>(p.add(k));
            let b = |k: usize| _mm256_loadu_si256(p.add(k) as *const __m256i);
            let mags = _mm256_packus_epi16(
                _mm256_packus_epi32(m(0), m(8)),
                _mm256_packus_epi32(m(16), m(24)),
            );
            let signs = _mm256_packs_epi16(
                _mm256_packs_epi32(b(0), b(8)),
                _mm256_packs_epi32(b(16), b(24)),
            );
            let codes = _mm256_or_si256(mags, _mm256_and_si256(signs, self.signbit));
            _mm256_permutevar8x32_epi32(codes, self.perm)
        }
    }

    /// FP8 codes of a prefix of `x` (divided by `s` first when `DIV`), as the AVX-512 version; returns
    /// its length (`32 * k`). Every intermediate is below 2^31, so signed compares order them right.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn fp8_encode<const DIV: bool>(
        x: &[f32],
        s: f32,
        f: Fp8Spec,
        out: &mut [u8],
    ) -> usize {
        fp8_encode_body::<DIV>(x, s, f, out)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn fp8_encode_body<const DIV: bool>(
        x: &[f32],
        s: f32,
        f: Fp8Spec,
        out: &mut [u8],
    ) -> usize {
        assert!(out.len() >= x.len());
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let enc = Fp8Lanes::new(f, s);
        let block = |i: usize| {
            prefetch(x, i + PREFETCH_AHEAD);
            prefetch(x, i + PREFETCH_AHEAD + 16);
            enc.codes_32::<DIV, false>(xp.add(i))
        };
        // Ordinary stores even for large outputs: streamed, the casts measured 2.3-2.5 G elements/s
        // against 2.7-2.8 (Zen 3, 64 Mi elements, the prefetch above in both).
        store_blocks_256(op, 1, x.len(), 32, false, block)
    }

    /// The scaled codes of `x[..32 * k]` (the encoder `enc` holds the scale), with the absmax of
    /// `next` and the prefetch of `ahead` as in [`int8_quant_body`]; returns `32 * k` and
    /// [`NextAbsmax::taken`]. Always inlined into the rows kernel, which builds the constants once
    /// (as an `#[inline]` function LLVM kept it out of line, a call per group that rebuilt them;
    /// removing the call measured within the noise, in L2 on Zen 3). No closure inside: one would not
    /// inherit the caller's AVX2, having no `target_feature` of its own.
    #[inline(always)]
    unsafe fn fp8_scaled_fused<const BOUNDED: bool>(
        enc: &Fp8Lanes,
        x: &[f32],
        out: &mut [u8],
        next: &[f32],
        ahead: &[f32],
    ) -> (usize, (usize, u32)) {
        let n = x.len() / 32 * 32;
        assert!(out.len() >= n);
        let mut next_abs = NextAbsmax::new(next, n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let mut i = 0;
        while i < n {
            prefetch(ahead, i);
            prefetch(ahead, i + 16);
            next_abs.step(i);
            let q = enc.codes_32::<true, BOUNDED>(xp.add(i));
            _mm256_storeu_si256(op.add(i) as *mut __m256i, q);
            i += 32;
        }
        (n, next_abs.taken())
    }

    /// f32 values of a prefix of the FP8 codes `q` (times `s` when `MUL`); returns its length (see
    /// [`store_blocks_256`]: large outputs are streamed).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn fp8_decode<const MUL: bool>(
        q: &[u8],
        s: f32,
        f: Fp8Spec,
        out: &mut [f32],
        stream: bool,
    ) -> usize {
        fp8_decode_body::<MUL>(q, s, f, out, stream)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn fp8_decode_body<const MUL: bool>(
        q: &[u8],
        s: f32,
        f: Fp8Spec,
        out: &mut [f32],
        stream: bool,
    ) -> usize {
        let n = q.len();
        assert!(out.len() >= n);
        let (qp, op) = (q.as_ptr(), out.as_mut_ptr());
        // Through f16 (F16C `vcvtph2ps`, exact): a code's magnitude bits shifted to f16's field
        // boundary are an f16 with the code's significand and exponent field, subnormals included
        // (f16's exponent field is wider), worth 2^(bias - 15) times the code's value; the f32 is
        // then scaled by 2^(15 - bias) exactly. NaN codes become f16 NaN 0x7E00 (f32 0x7FC00000,
        // which the multiplications keep); E5M2's infinity is f16's. The lanes are 16-bit until the
        // conversion: half the work of building f32 bits in 32-bit lanes.
        let shift = _mm_cvtsi32_si128((10 - f.man) as i32);
        let mag_mask = _mm_set1_epi16((0x7f << (10 - f.man)) as i16);
        let sign_mask = _mm_set1_epi16(0x8000u16 as i16);
        // The largest magnitude that is not NaN: E4M3's `max`, E5M2's infinity (the code after it).
        let last = if f.ieee { f.max + 1 } else { f.max };
        let last = _mm_set1_epi16((last << (10 - f.man)) as i16);
        let nan = _mm_set1_epi16(0x7e00);
        let rebias = _mm256_set1_ps(f32::from_bits((127 + 15 - f.bias) << 23));
        let vs = _mm256_set1_ps(s);
        let block = |i: usize| {
            let w = _mm_cvtepu8_epi16(_mm_loadl_epi64(qp.add(i) as *const __m128i));
            let mag = _mm_and_si128(_mm_sll_epi16(w, shift), mag_mask);
            let mag = _mm_blendv_epi8(mag, nan, _mm_cmpgt_epi16(mag, last));
            let h = _mm_or_si128(mag, _mm_and_si128(_mm_slli_epi16::<8>(w), sign_mask));
            let v = _mm256_mul_ps(_mm256_cvtph_ps(h), rebias);
            let v = if MUL { _mm256_mul_ps(v, vs) } else { v };
            _mm256_castps_si256(v)
        };
        store_blocks_256(op as *mut u8, 4, n, 8, stream, block)
    }

    /// f32 -> f16 bits of a prefix of `x` (F16C `vcvtps2ph`); returns its length (see
    /// [`store_blocks_256`]: large outputs are streamed).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn f32_to_f16(x: &[f32], out: &mut [u16]) -> usize {
        f32_to_f16_body(x, out)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn f32_to_f16_body(x: &[f32], out: &mut [u16]) -> usize {
        let n = x.len();
        assert!(out.len() >= n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let half =
            |i: usize| _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(xp.add(i)));
        let block = |i: usize| {
            prefetch(x, i + PREFETCH_AHEAD);
            _mm256_set_m128i(half(i + 8), half(i))
        };
        store_blocks_256(op as *mut u8, 2, n, 16, n >= STREAM_STORES_MIN, block)
    }

    /// f16 bits -> f32 of a prefix of `h` (F16C `vcvtph2ps`); returns its length (see
    /// [`store_blocks_256`]).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn f16_to_f32(h: &[u16], out: &mut [f32]) -> usize {
        f16_to_f32_body(h, out)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn f16_to_f32_body(h: &[u16], out: &mut [f32]) -> usize {
        let n = h.len();
        assert!(out.len() >= n);
        let (hp, op) = (h.as_ptr(), out.as_mut_ptr());
        let block = |i: usize| {
            _mm256_castps_si256(_mm256_cvtph_ps(
                _mm_loadu_si128(hp.add(i) as *const __m128i),
            ))
        };
        store_blocks_256(op as *mut u8, 4, n, 8, n >= STREAM_STORES_MIN, block)
    }

    /// f32 -> bf16 bits of a prefix of `x` (as the AVX-512 version); returns its length (see
    /// [`store_blocks_256`]).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn f32_to_bf16(x: &[f32], out: &mut [u16]) -> usize {
        f32_to_bf16_body(x, out)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn f32_to_bf16_body(x: &[f32], out: &mut [u16]) -> usize {
        let n = x.len();
        assert!(out.len() >= n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let conv = |i: usize| {
            let b = _mm256_castps_si256(_mm256_loadu_ps(xp.add(i)));
            let odd = _mm256_and_si256(_mm256_srli_epi32::<16>(b), _mm256_set1_epi32(1));
            let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(
                _mm256_add_epi32(b, _mm256_set1_epi32(0x7fff)),
                odd,
            ));
            let nan = _mm256_or_si256(_mm256_srli_epi32::<16>(b), _mm256_set1_epi32(0x40));
            let is_nan = _mm256_cmpgt_epi32(
                _mm256_and_si256(b, _mm256_set1_epi32(0x7fff_ffff)),
                _mm256_set1_epi32(0x7f80_0000),
            );
            _mm256_blendv_epi8(rounded, nan, is_nan)
        };
        let block = |i: usize| {
            prefetch(x, i + PREFETCH_AHEAD);
            let p = _mm256_packus_epi32(conv(i), conv(i + 8));
            _mm256_permute4x64_epi64::<0b11_01_10_00>(p)
        };
        store_blocks_256(op as *mut u8, 2, n, 16, n >= STREAM_STORES_MIN, block)
    }

    /// bf16 bits -> f32 of a prefix of `h`; returns its length (see [`store_blocks_256`]).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn bf16_to_f32(h: &[u16], out: &mut [f32]) -> usize {
        bf16_to_f32_body(h, out)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn bf16_to_f32_body(h: &[u16], out: &mut [f32]) -> usize {
        let n = h.len();
        assert!(out.len() >= n);
        let (hp, op) = (h.as_ptr(), out.as_mut_ptr());
        let block = |i: usize| {
            let v = _mm256_cvtepu16_epi32(_mm_loadu_si128(hp.add(i) as *const __m128i));
            let is_nan = _mm256_cmpgt_epi32(
                _mm256_and_si256(v, _mm256_set1_epi32(0x7fff)),
                _mm256_set1_epi32(0x7f80),
            );
            let v = _mm256_or_si256(v, _mm256_and_si256(is_nan, _mm256_set1_epi32(0x40)));
            _mm256_slli_epi32::<16>(v)
        };
        store_blocks_256(op as *mut u8, 4, n, 8, n >= STREAM_STORES_MIN, block)
    }
    /// INT8 codes and scales of whole rows (as many as `scales` holds), in one function compiled for
    /// AVX2 (the tails of the groups in portable code), through [`pipelined_groups`]. Stops and
    /// returns false at the first group whose absmax `accept` rejects (the groups before it are
    /// written).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn int8_quant_rows(
        src: &[f32],
        cols: usize,
        glen: usize,
        dst: &mut [i8],
        scales: &mut [f32],
        accept: impl Fn(f32) -> bool,
    ) -> bool {
        pipelined_groups(src, cols, glen, scales, accept, Int8Rows { dst })
    }

    /// The INT8 bodies of [`int8_quant_rows`].
    struct Int8Rows<'a> {
        dst: &'a mut [i8],
    }

    impl super::SymmetricBody for Int8Rows<'_> {
        const QMAX: f32 = 127.0;

        #[inline(always)]
        unsafe fn absmax_bits(x: &[f32]) -> u32 {
            absmax_bits_body(x)
        }

        #[inline(always)]
        unsafe fn codes(
            &mut self,
            x: &[f32],
            s: f32,
            r: std::ops::Range<usize>,
            next: &[f32],
            ahead: &[f32],
        ) -> (usize, u32) {
            let out = &mut self.dst[r];
            if s == 0.0 {
                out.fill(0);
                return (0, 0);
            }
            let (done, taken) = int8_quant_body(x, s, out, next, ahead);
            crate::kernels::int8::quantize_group_fast(&x[done..], s, &mut out[done..]);
            taken
        }
    }

    /// FP8 E4M3 scaled codes and scales of whole rows, as [`int8_quant_rows`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn fp8_quant_rows(
        src: &[f32],
        cols: usize,
        glen: usize,
        dst: &mut [u8],
        scales: &mut [f32],
        accept: impl Fn(f32) -> bool,
    ) -> bool {
        // The constants once; each group sets its scale.
        let base = Fp8Lanes::new(crate::kernels::fp8::scaled_spec(), 1.0);
        pipelined_groups(src, cols, glen, scales, accept, Fp8Rows { dst, base })
    }

    /// The FP8 E4M3 bodies of [`fp8_quant_rows`].
    struct Fp8Rows<'a> {
        dst: &'a mut [u8],
        base: Fp8Lanes,
    }

    impl super::SymmetricBody for Fp8Rows<'_> {
        const QMAX: f32 = crate::kernels::fp8::E4M3_MAX;

        #[inline(always)]
        unsafe fn absmax_bits(x: &[f32]) -> u32 {
            absmax_bits_body(x)
        }

        #[inline(always)]
        unsafe fn codes(
            &mut self,
            x: &[f32],
            s: f32,
            r: std::ops::Range<usize>,
            next: &[f32],
            ahead: &[f32],
        ) -> (usize, u32) {
            let out = &mut self.dst[r];
            if s == 0.0 {
                out.fill(0);
                return (0, 0);
            }
            let enc = Fp8Lanes {
                vs: _mm256_set1_ps(s),
                ..self.base
            };
            let (done, taken) = if s >= super::BOUNDED_SCALE_MIN {
                fp8_scaled_fused::<true>(&enc, x, out, next, ahead)
            } else {
                fp8_scaled_fused::<false>(&enc, x, out, next, ahead)
            };
            crate::kernels::fp8::e4m3_scaled_tail(&x[done..], s, &mut out[done..]);
            taken
        }
    }

    /// An absmax taken 32 elements at a time inside another loop (see [`int8_quant_body`]): four
    /// accumulators of sign-cleared bit patterns.
    struct NextAbsmax {
        p: *const f32,
        n: usize,
        on: bool,
        acc: [__m256i; 4],
    }

    impl NextAbsmax {
        /// Over `next[..n]` (`n` a multiple of 32); off (bits 0) when `next` is shorter.
        #[inline(always)]
        unsafe fn new(next: &[f32], n: usize) -> Self {
            let acc = [_mm256_setzero_si256(); 4];
            Self {
                p: next.as_ptr(),
                n,
                on: next.len() >= n && n > 0,
                acc,
            }
        }

        /// Takes `next[i..i + 32]` in (`i + 32 <= n`).
        #[inline(always)]
        unsafe fn step(&mut self, i: usize) {
            if self.on {
                let m = _mm256_set1_epi32(0x7fff_ffff);
                for (k, a) in self.acc.iter_mut().enumerate() {
                    let v = _mm256_castps_si256(_mm256_loadu_ps(self.p.add(i + 8 * k)));
                    *a = _mm256_max_epu32(*a, _mm256_and_si256(v, m));
                }
            }
        }

        /// How many elements of `next` were taken (`n`, or 0 when off), and their absmax bits.
        #[inline(always)]
        unsafe fn taken(&self) -> (usize, u32) {
            if !self.on {
                return (0, 0);
            }
            let [a0, a1, a2, a3] = self.acc;
            let a = _mm256_max_epu32(_mm256_max_epu32(a0, a1), _mm256_max_epu32(a2, a3));
            let a = _mm_max_epu32(_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a));
            let a = _mm_max_epu32(a, _mm_shuffle_epi32::<0b01_00_11_10>(a));
            let a = _mm_max_epu32(a, _mm_shuffle_epi32::<0b10_11_00_01>(a));
            (self.n, _mm_cvtsi128_si32(a) as u32)
        }
    }

    /// The 4-bit quantizer on whole rows, compiled for AVX2: [`pipelined_int4`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn int4_quant_rows<A: Fn(f32, f32, bool) -> bool>(
        src: &[f32],
        shape: crate::kernels::Shape,
        dst: &mut [u8],
        scales: &mut [f32],
        zeros: &mut [u8],
        accept: Option<&A>,
    ) -> bool {
        pipelined_int4::<Fused, A>(src, shape, dst, scales, zeros, accept)
    }

    /// The AVX2 bodies of [`pipelined_int4`].
    struct Fused;

    impl Int4Fused for Fused {
        #[inline(always)]
        unsafe fn lo_hi_nan(x: &[f32]) -> (f32, f32, bool) {
            lo_hi_nan_body::<true>(x)
        }
        #[inline(always)]
        unsafe fn quant(
            x: &[f32],
            scale: f32,
            zero: f32,
            out: &mut [u8],
            next: &[f32],
            ahead: &[f32],
        ) -> (usize, (usize, (f32, f32, bool))) {
            int4_quant_body(x, scale, zero, out, next, ahead)
        }
    }

    /// A range (minimum and maximum from +0.0, by strict comparisons, and whether a NaN was seen)
    /// taken 32 elements at a time inside another loop, as [`NextAbsmax`].
    struct NextRange {
        p: *const f32,
        n: usize,
        on: bool,
        lo: [__m256; 2],
        hi: [__m256; 2],
        nan: __m256,
    }

    impl NextRange {
        /// Over `next[..n]` (`n` a multiple of 32); off when `next` is shorter.
        #[inline(always)]
        unsafe fn new(next: &[f32], n: usize) -> Self {
            let z = _mm256_setzero_ps();
            Self {
                p: next.as_ptr(),
                n,
                on: next.len() >= n && n > 0,
                lo: [z; 2],
                hi: [z; 2],
                nan: z,
            }
        }

        /// Takes `next[i..i + 32]` in (`i + 32 <= n`).
        #[inline(always)]
        unsafe fn step(&mut self, i: usize) {
            if self.on {
                let v = |k: usize| _mm256_loadu_ps(self.p.add(i + 8 * k));
                let (v0, v1, v2, v3) = (v(0), v(1), v(2), v(3));
                // min(v, acc) = v < acc ? v : acc: a NaN lane never replaces the accumulator.
                self.lo[0] = _mm256_min_ps(v2, _mm256_min_ps(v0, self.lo[0]));
                self.hi[0] = _mm256_max_ps(v2, _mm256_max_ps(v0, self.hi[0]));
                self.lo[1] = _mm256_min_ps(v3, _mm256_min_ps(v1, self.lo[1]));
                self.hi[1] = _mm256_max_ps(v3, _mm256_max_ps(v1, self.hi[1]));
                let unord = _mm256_or_ps(
                    _mm256_cmp_ps::<_CMP_UNORD_Q>(v0, v1),
                    _mm256_cmp_ps::<_CMP_UNORD_Q>(v2, v3),
                );
                self.nan = _mm256_or_ps(self.nan, unord);
            }
        }

        /// How many elements of `next` were taken (`n`, or 0 when off), and their range.
        #[inline(always)]
        unsafe fn taken(&self) -> (usize, (f32, f32, bool)) {
            if !self.on {
                return (0, (0.0, 0.0, false));
            }
            // In any order (a shuffle tree): the minimum and maximum are the same values, the
            // accumulators holding no NaN (only a zero's sign could differ, and `asym_params` maps both
            // zeros to +0.0).
            let lo = _mm256_min_ps(self.lo[0], self.lo[1]);
            let hi = _mm256_max_ps(self.hi[0], self.hi[1]);
            let lo = _mm_min_ps(_mm256_castps256_ps128(lo), _mm256_extractf128_ps::<1>(lo));
            let hi = _mm_max_ps(_mm256_castps256_ps128(hi), _mm256_extractf128_ps::<1>(hi));
            let lo = _mm_min_ps(lo, _mm_movehl_ps(lo, lo));
            let hi = _mm_max_ps(hi, _mm_movehl_ps(hi, hi));
            let lo = _mm_min_ss(lo, _mm_shuffle_ps::<1>(lo, lo));
            let hi = _mm_max_ss(hi, _mm_shuffle_ps::<1>(hi, hi));
            let (lo, hi) = (_mm_cvtss_f32(lo) + 0.0, _mm_cvtss_f32(hi) + 0.0);
            (self.n, (lo, hi, _mm256_movemask_ps(self.nan) != 0))
        }
    }
}

/// Folds per-lane minima and maxima with +0.0 by strict comparisons, lane 0 first.
fn fold_lo_hi(l: &[f32], h: &[f32]) -> (f32, f32) {
    let (mut lo, mut hi) = (0.0f32, 0.0f32);
    for (&a, &b) in l.iter().zip(h) {
        lo = if a < lo { a } else { lo };
        hi = if b > hi { b } else { hi };
    }
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use crate::kernels::simd::{with_simd_level, SimdLevel};
    use crate::kernels::STREAM_STORES_MIN;
    use crate::kernels::{fp8, half, int8, kbit, Shape};

    /// Runs `cast` on `src` into a destination that starts one element past an aligned address (so
    /// that the streaming stores need their unaligned first block), at `level`; returns what it
    /// wrote, after checking that the elements around the destination are untouched.
    fn cast_at<S, D: Copy + PartialEq + std::fmt::Debug>(
        level: SimdLevel,
        src: &[S],
        fill: D,
        cast: impl Fn(&[S], &mut [D]),
    ) -> Vec<D> {
        let mut buf = vec![fill; src.len() + 2];
        with_simd_level(level, || cast(src, &mut buf[1..=src.len()])).unwrap();
        assert_eq!((buf[0], buf[src.len() + 1]), (fill, fill), "wrote outside");
        buf[1..=src.len()].to_vec()
    }

    /// The AVX2 casts of large outputs (`STREAM_STORES_MIN` elements and more: the 16-bit casts and
    /// the decoders stream their stores there, the FP8 casts do not) give the portable code's bits,
    /// with a misaligned destination and a length that leaves a tail.
    #[test]
    fn streamed_casts_equal_the_portable_path() {
        if !SimdLevel::Avx2.is_available() {
            return;
        }
        let n = STREAM_STORES_MIN + 37;
        // Every f32 pattern class: a stride through the bit patterns.
        let x: Vec<f32> = (0..n as u64)
            .map(|i| f32::from_bits((i * 1031 % (1 << 32)) as u32))
            .collect();
        let codes: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
        let halves: Vec<u16> = (0..n).map(|i| (i * 13) as u16).collect();
        let both = |f: &dyn Fn(SimdLevel) -> Vec<u32>| {
            assert_eq!(f(SimdLevel::Avx2), f(SimdLevel::Scalar));
        };
        both(&|l| {
            let c = |s: &[f32], d: &mut [u16]| half::f32_to_f16(s, d).unwrap();
            cast_at(l, &x, 0x5555u16, c)
                .iter()
                .map(|&v| v as u32)
                .collect()
        });
        both(&|l| {
            let c = |s: &[f32], d: &mut [u16]| half::f32_to_bf16(s, d).unwrap();
            cast_at(l, &x, 0x5555u16, c)
                .iter()
                .map(|&v| v as u32)
                .collect()
        });
        for saturate in [false, true] {
            both(&|l| {
                let c = |s: &[f32], d: &mut [u8]| fp8::f32_to_fp8_e4m3(s, d, saturate).unwrap();
                cast_at(l, &x, 0x55u8, c)
                    .iter()
                    .map(|&v| v as u32)
                    .collect()
            });
            both(&|l| {
                let c = |s: &[f32], d: &mut [u8]| fp8::f32_to_fp8_e5m2(s, d, saturate).unwrap();
                cast_at(l, &x, 0x55u8, c)
                    .iter()
                    .map(|&v| v as u32)
                    .collect()
            });
        }
        let bits = |v: Vec<f32>| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
        both(&|l| {
            let c = |s: &[u16], d: &mut [f32]| half::f16_to_f32(s, d).unwrap();
            bits(cast_at(l, &halves, 7.5f32, c))
        });
        both(&|l| {
            let c = |s: &[u16], d: &mut [f32]| half::bf16_to_f32(s, d).unwrap();
            bits(cast_at(l, &halves, 7.5f32, c))
        });
        both(&|l| {
            let c = |s: &[u8], d: &mut [f32]| fp8::fp8_e4m3_to_f32(s, d).unwrap();
            bits(cast_at(l, &codes, 7.5f32, c))
        });
        both(&|l| {
            let c = |s: &[u8], d: &mut [f32]| fp8::fp8_e5m2_to_f32(s, d).unwrap();
            bits(cast_at(l, &codes, 7.5f32, c))
        });
    }

    /// The AVX2 dequantizers stream their stores when the whole output is large (each group's run
    /// then starts with an unaligned block): the same bits as the portable code, nothing written
    /// outside the destination.
    #[test]
    fn streamed_dequantizers_equal_the_portable_path() {
        if !SimdLevel::Avx2.is_available() {
            return;
        }
        // The first difference, not two vectors of millions.
        let same = |a: Vec<u32>, b: Vec<u32>, what: &str, group: usize| {
            let at = a.iter().zip(&b).position(|(x, y)| x != y);
            let n = (a.len(), b.len());
            assert!(
                at.is_none() && n.0 == n.1,
                "{what} g{group}: first difference at {at:?}"
            );
        };
        let cols = 4096 + 40;
        let rows = STREAM_STORES_MIN.div_ceil(cols);
        let n = rows * cols;
        let x: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.618).sin() * 3.0).collect();
        for group in [0, 128, 100] {
            let shape = Shape::new(rows, cols, group).unwrap();
            let mut scales = vec![0f32; shape.n_groups()];
            let mut q8 = vec![0i8; n];
            int8::int8_quantize(&x, shape, &mut q8, &mut scales).unwrap();
            let deq = |l| {
                let c =
                    |q: &[i8], d: &mut [f32]| int8::int8_dequantize(q, &scales, shape, d).unwrap();
                cast_at(l, &q8, 7.5f32, c)
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>()
            };
            same(deq(SimdLevel::Avx2), deq(SimdLevel::Scalar), "INT8", group);
            let mut f8 = vec![0u8; n];
            fp8::fp8_e4m3_quantize(&x, shape, &mut f8, &mut scales).unwrap();
            let deq = |l| {
                let c = |q: &[u8], d: &mut [f32]| {
                    fp8::fp8_e4m3_dequantize(q, &scales, shape, d).unwrap()
                };
                cast_at(l, &f8, 7.5f32, c)
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>()
            };
            same(deq(SimdLevel::Avx2), deq(SimdLevel::Scalar), "FP8", group);
            let mut p4 = vec![0u8; kbit::kbit_packed_size(rows, cols, 4)];
            let mut zeros = vec![0u8; shape.n_groups()];
            kbit::kbit_quantize(&x, shape, 4, &mut p4, &mut scales, &mut zeros).unwrap();
            // The 4-bit body streams only from an even element: destinations at an odd and an even
            // element past an aligned address take both paths.
            for at in [1, 2] {
                let deq = |l| {
                    let mut out = vec![7.5f32; n + 4];
                    let d = &mut out[at..at + n];
                    let c = || kbit::kbit_dequantize(&p4, &scales, &zeros, shape, 4, d).unwrap();
                    with_simd_level(l, c).unwrap();
                    assert_eq!((out[at - 1], out[at + n]), (7.5, 7.5), "wrote outside");
                    out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                };
                same(deq(SimdLevel::Avx2), deq(SimdLevel::Scalar), "INT4", group);
            }
        }
    }
}
