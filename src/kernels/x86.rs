//! What the AVX2 and AVX-512 bodies of the formats (x86-64 only; `<format>/x86.rs`, chosen at run
//! time, see [`super::simd`]) share: the software-pipelined loop of the row quantizers
//! ([`pipelined`]), the prefetches, the streaming stores and the absmax reduction; and the rules
//! every x86 body follows.
//!
//! Every function here is `unsafe` only because it is compiled for a CPU feature: the caller must have
//! checked that the CPU has it (the dispatch in each format's `mod.rs` does so through
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
//! Both levels divide (`x / s` in 8 or 16 lanes) rather than multiply by `1 / s` and redo the rare
//! vectors near a rounding boundary with the division (the same codes): on Zen 3 (64 Mi elements, in
//! the pipelined row quantizers) the multiplication gave INT8 g128 0.78-0.92 of the ceiling against
//! 0.90-0.94 for the division, FP8 E4M3 per row 0.62-0.64 against 0.67-0.83; on Zen 5 (AVX-512)
//! 0.62 against 0.85. CPUs whose 8-lane division is much slower (Haswell) are not measured. On Zen 4
//! (about 3.66 GHz) a 16-lane division issues every 6 cycles with normal operands (11 with zero or
//! subnormal ones), and the FP8 encoder's other operations keep the vector units busier than the
//! divisions keep the divider: in L1 the scaled FP8 codes (without clamps) take 2.64 ns per 16 lanes
//! with the division and 2.40-2.54 with a multiplication in its place.
#![allow(clippy::missing_safety_doc)]

/// Prefetches the cache line of `ahead[i]` into L1, if `i` is inside `ahead` (a hint: it reads
/// nothing in the program's sense and cannot fault).
#[inline(always)]
pub(crate) unsafe fn prefetch(ahead: &[f32], i: usize) {
    if i < ahead.len() {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(ahead.as_ptr().add(i) as *const i8);
    }
}

/// How far ahead of the group being quantized the codes loop prefetches, in elements: past the
/// next group (whose absmax the same loop takes), 4 KiB further. Measured on Zen 3 at 64 Mi
/// elements: 256 to 2048 elements all help, 1024 most.
pub(crate) const PREFETCH_AHEAD: usize = 1024;

/// From this group length on, the pipelined loops do not take the next group's absmax (or range) in
/// the codes loop: each group's codes run over it alone in pieces of [`LONG_PIECE`], each piece
/// preceded by the prefetch of its share of the input past the group into L2 (`prefetcht1`), and
/// the next group's absmax is then a pass of its own, from L2 (see [`long_group`]). Taken in the
/// codes loop, each element is read twice about two groups apart: at 4096 (per row on a
/// 4096-column matrix) that is 32 KiB, all of Zen 4's L1. Measured on Zen 4 (64 Mi elements,
/// AVX-512 INT8, medians of 7): per row at 1024 to 4096 columns
/// 4.4-4.6 G elements/s taken together against 5.1-5.6 apart; groups of 256 4.5 against 4.8, of
/// 512 4.5 against 5.3; groups of 128 4.5-4.6 together against 4.3 apart, so they stay fused.
/// Apart but prefetched into L1 measured 4.3-4.4 per row.
const LONG_GROUP_MIN: usize = 256;

/// The piece of a long group between two bursts of L2 prefetches (16 cache lines).
const LONG_PIECE: usize = 256;

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
pub(crate) unsafe fn pipelined_groups<B: SymmetricBody>(
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
pub(crate) trait SymmetricBody {
    /// The largest code magnitude (the scale is absmax / `QMAX`).
    const QMAX: f32;
    /// The whole-group absmax of `x` (sign-cleared bits), for the groups the codes loop could not
    /// take.
    unsafe fn absmax_bits(x: &[f32]) -> u32;
    /// A code (the default is the code of zero).
    type Code: Copy + Default;
    /// The codes of the rows.
    fn dst(&mut self) -> &mut [Self::Code];
    /// Writes the codes of `x = src[r]` with scale `s != 0` into the output at `r`, taking in the
    /// same loop the absmax of `next[..k]` (a multiple of the level's step, 32 or 64)
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
pub(crate) trait Pipeline {
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
        if s == 0.0 {
            self.body.dst()[r].fill(B::Code::default());
            return (0, 0);
        }
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
/// that chain overlaps the codes. One group ahead, each group's divisions would wait for its own
/// parameters: on Zen 4, in L2 (64 Ki elements, best of 9, paired series), the AVX-512 scaled FP8
/// quantizer g128 runs at 3.9 G elements/s two ahead and 3.4 one ahead (g64 3.2 and 2.7), INT4 g128
/// at 4.5 and 4.1.
///
/// Where the parameters of group `i + 1` sit in the program matters too ([`Pipeline::LATE`]). Before
/// group `i`'s codes, they follow at once the reductions that end group `i - 1`'s codes loop and wait
/// for them: INT4's chain (two reductions, two dependent divisions, the conversions of the zero
/// point) then takes long enough to hold up the instructions behind it, though none of group `i`'s
/// codes depend on it (likely the oldest instructions holding the reorder buffer and schedulers).
/// After group `i`'s codes, its inputs have long been ready and it runs beside the codes. Measured on
/// Zen 4 in L2 (64 Ki elements, best of 9, five alternating runs): AVX-512 INT4 g128 5.3 G
/// elements/s after and 4.2 before, AVX2 4.3 and 4.0; with constant parameters in place of the whole
/// chain (wrong codes, for timing only) 5.4, so the chain after the codes is almost free. INT8 and
/// FP8, whose chains are one reduction and one division, are before: after, INT8 g128 measures 7.5
/// against 7.7 and FP8 g128 the same 4.8.
/// Long groups are quantized in pieces, then their successor is measured in a pass of its own, one
/// group ahead (see [`long_group`]; two ahead, that pass read from memory, not L2: INT4 per row on
/// 4096 columns 0.86 of the ceiling against 0.92). `src` may go on past the rows (the prefetch
/// reads from there).
#[inline(always)]
pub(crate) unsafe fn pipelined<Q: Pipeline>(
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
        // stops the loop either way (the callers then zero-fill everything). One ahead,
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
pub(crate) struct Group {
    start: usize,
    end: usize,
    pub(crate) row: usize,
    pub(crate) row_start: usize,
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

/// AVX-512 (F, BW, VL) bodies: 16 lanes, masked loads and stores for the tails.
pub(crate) mod avx512 {
    use std::arch::x86_64::*;

    #[inline(always)]
    pub(crate) fn tail_mask(k: usize) -> __mmask16 {
        ((1u32 << k) - 1) as __mmask16
    }

    /// Largest sign-cleared bit pattern of `x` (0 for an empty slice).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn absmax_bits(x: &[f32]) -> u32 {
        absmax_bits_body(x)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    pub(crate) unsafe fn absmax_bits_body(x: &[f32]) -> u32 {
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

    /// An absmax taken 64 elements at a time inside another loop (see `int8::x86::avx512::int8_quant_fused`): four
    /// accumulators of sign-cleared bit patterns.
    pub(crate) struct NextAbsmax {
        p: *const f32,
        n: usize,
        on: bool,
        acc: [__m512i; 4],
    }

    impl NextAbsmax {
        /// Over `next[..n]` (`n` a multiple of 64); off (bits 0) when `next` is shorter.
        #[inline(always)]
        pub(crate) unsafe fn new(next: &[f32], n: usize) -> Self {
            Self {
                p: next.as_ptr(),
                n,
                on: next.len() >= n && n > 0,
                acc: [_mm512_setzero_si512(); 4],
            }
        }

        /// Takes `next[i..i + 64]` in (`i + 64 <= n`).
        #[inline(always)]
        pub(crate) unsafe fn step(&mut self, i: usize) {
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
        pub(crate) unsafe fn taken(&self) -> (usize, u32) {
            if !self.on {
                return (0, 0);
            }
            let [a0, a1, a2, a3] = self.acc;
            let a = _mm512_max_epu32(_mm512_max_epu32(a0, a1), _mm512_max_epu32(a2, a3));
            (self.n, _mm512_reduce_max_epu32(a))
        }
    }

    /// Writes `n` f32 at `out`: `block(i, k)` gives elements `i .. i + 16` under the lane mask `k`
    /// (lanes outside it are not stored, so `block` must not read inputs past them either). With
    /// `stream`, the 16-element blocks from the first 16-byte boundary on are written with
    /// non-temporal 16-byte stores (memory then does not read each output line before it is
    /// written; see [`crate::kernels::STREAM_STORES_MIN`]); the up to 3 elements before that
    /// boundary and the tail with ordinary masked stores. The caller fences (the dequantizers stream
    /// many short runs and fence once at the end).
    #[inline(always)]
    pub(crate) unsafe fn store_f32_blocks(
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
    pub(crate) unsafe fn store_f32_run(
        out: *mut f32,
        n: usize,
        block: impl Fn(usize, __mmask16) -> __m512,
    ) {
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
    pub(crate) unsafe fn store_code_run<const SIZE: usize>(
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
}

/// AVX2 bodies: 8 lanes; each function handles the largest multiple of its block and leaves the tail
/// to the portable code (it returns how many elements it did).
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    use crate::kernels::STREAM_STORES_MIN;

    /// Writes `n` elements of `size` bytes at `out` in blocks of `step` elements, 32 bytes each,
    /// `block(i)` giving elements `i .. i + step`; returns how many were written (the largest
    /// multiple of `step` up to `n` with ordinary stores; with streaming stores, from the first 16-byte
    /// aligned address on, up to `step - 1` fewer, a misaligned first block written twice with the
    /// same bytes). Streams when `stream` (see [`STREAM_STORES_MIN`]) and `n >= step`.
    #[inline(always)]
    pub(crate) unsafe fn store_blocks_256(
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
    pub(crate) unsafe fn absmax_bits_body(x: &[f32]) -> u32 {
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

    /// An absmax taken 32 elements at a time inside another loop (see `int8::x86::avx2::int8_quant_body`): four
    /// accumulators of sign-cleared bit patterns.
    pub(crate) struct NextAbsmax {
        p: *const f32,
        n: usize,
        on: bool,
        acc: [__m256i; 4],
    }

    impl NextAbsmax {
        /// Over `next[..n]` (`n` a multiple of 32); off (bits 0) when `next` is shorter.
        #[inline(always)]
        pub(crate) unsafe fn new(next: &[f32], n: usize) -> Self {
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
        pub(crate) unsafe fn step(&mut self, i: usize) {
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
        pub(crate) unsafe fn taken(&self) -> (usize, u32) {
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
}

/// Test helpers of the x86 bodies.
#[cfg(test)]
pub(crate) mod testing {
    use crate::kernels::simd::{with_simd_level, SimdLevel};

    /// Runs `cast` on `src` into a destination that starts one element past an aligned address (so
    /// that the streaming stores need their unaligned first block), at `level`; returns what it
    /// wrote, after checking that the elements around the destination are untouched.
    pub(crate) fn cast_at<S, D: Copy + PartialEq + std::fmt::Debug>(
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

    /// The first difference of two bit vectors, not two vectors of millions.
    pub(crate) fn same(a: Vec<u32>, b: Vec<u32>, what: &str, group: usize) {
        let at = a.iter().zip(&b).position(|(x, y)| x != y);
        let n = (a.len(), b.len());
        assert!(
            at.is_none() && n.0 == n.1,
            "{what} g{group}: first difference at {at:?}"
        );
    }

    /// A `rows x cols` input of at least `STREAM_STORES_MIN` elements whose rows are longer than a
    /// group of 4096 (so that every dequantizer streams its stores, in runs that start unaligned).
    pub(crate) fn large_input() -> (usize, usize, Vec<f32>) {
        let cols = 4096 + 40;
        let rows = crate::kernels::STREAM_STORES_MIN.div_ceil(cols);
        let n = rows * cols;
        let x = (0..n).map(|i| ((i as f32) * 0.618).sin() * 3.0).collect();
        (rows, cols, x)
    }
}
