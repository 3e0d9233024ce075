//! Packing of b-bit codes into rows of bytes (the layout of [`super`]'s module docs, "Packed codes"), with
//! the scalar references the tests hold the fast paths to.
use super::packed_row_bytes;

/// Packs `codes` (one row) into `dst`, `bits` bits each, least significant bit first; only the low `bits`
/// bits of each code are stored. Writes exactly `packed_row_bytes(codes.len(), bits)` bytes (the unused
/// high bits of the last byte are 0) and leaves the rest of `dst` alone.
///
/// # Panics
/// If `bits` is not in 1..=8 or `dst` is shorter than `packed_row_bytes(codes.len(), bits)` (the kernels
/// check both before calling it).
pub fn pack_row(codes: &[u8], bits: u32, dst: &mut [u8]) {
    let nbytes = packed_row_bytes(codes.len(), bits);
    let dst = &mut dst[..nbytes];
    match bits {
        1 => pack_fixed::<1>(codes, dst),
        2 => pack_fixed::<2>(codes, dst),
        3 => pack_fixed::<3>(codes, dst),
        4 => pack_fixed::<4>(codes, dst),
        5 => pack_fixed::<5>(codes, dst),
        6 => pack_fixed::<6>(codes, dst),
        7 => pack_fixed::<7>(codes, dst),
        8 => pack_fixed::<8>(codes, dst),
        _ => panic!("pack_row: bits is {bits}, not in 1..=8"),
    }
}

/// Unpacks `codes.len()` codes of `bits` bits from `src` (the layout of [`pack_row`]); reads
/// `packed_row_bytes(codes.len(), bits)` bytes.
///
/// # Panics
/// If `bits` is not in 1..=8 or `src` is shorter than `packed_row_bytes(codes.len(), bits)`.
pub fn unpack_row(src: &[u8], bits: u32, codes: &mut [u8]) {
    let src = &src[..packed_row_bytes(codes.len(), bits)];
    match bits {
        1 => unpack_fixed::<1>(src, codes),
        2 => unpack_fixed::<2>(src, codes),
        3 => unpack_fixed::<3>(src, codes),
        4 => unpack_fixed::<4>(src, codes),
        5 => unpack_fixed::<5>(src, codes),
        6 => unpack_fixed::<6>(src, codes),
        7 => unpack_fixed::<7>(src, codes),
        8 => unpack_fixed::<8>(src, codes),
        _ => panic!("unpack_row: bits is {bits}, not in 1..=8"),
    }
}

/// Packs with a compile-time width: 8 codes of B bits make exactly B bytes (one u64 word); special
/// cases for whole bytes (B = 8) and nibbles (B = 4). `dst` is exactly the packed size.
pub(crate) fn pack_fixed<const B: usize>(codes: &[u8], dst: &mut [u8]) {
    let mask = ((1u16 << B) - 1) as u8;
    if B == 8 {
        dst.copy_from_slice(codes);
        return;
    }
    if B == 4 {
        let mut pairs = codes.chunks_exact(2);
        for (d, p) in dst.iter_mut().zip(&mut pairs) {
            *d = (p[0] & 0x0f) | (p[1] << 4);
        }
        if let [last] = pairs.remainder() {
            dst[codes.len() / 2] = last & 0x0f;
        }
        return;
    }
    // `full` words of 8 codes fill `full * B` bytes; the tail (fewer than 8 codes) the rest of `dst`.
    let full = codes.len() / 8;
    let (head, tail) = dst.split_at_mut(full * B);
    for (c, d) in codes.chunks_exact(8).zip(head.chunks_exact_mut(B)) {
        let mut acc = 0u64;
        for (i, &q) in c.iter().enumerate() {
            acc |= u64::from(q & mask) << (i * B);
        }
        d.copy_from_slice(&acc.to_le_bytes()[..B]);
    }
    if !tail.is_empty() {
        let mut acc = 0u64;
        for (i, &q) in codes[full * 8..].iter().enumerate() {
            acc |= u64::from(q & mask) << (i * B);
        }
        let n = tail.len();
        tail.copy_from_slice(&acc.to_le_bytes()[..n]);
    }
}

/// Unpacks with a compile-time width (the inverse of [`pack_fixed`]). `src` is exactly the packed size.
pub(crate) fn unpack_fixed<const B: usize>(src: &[u8], codes: &mut [u8]) {
    let mask = ((1u16 << B) - 1) as u64;
    if B == 8 {
        codes.copy_from_slice(src);
        return;
    }
    if B == 4 {
        let mut pairs = codes.chunks_exact_mut(2);
        for (p, &s) in (&mut pairs).zip(src) {
            p[0] = s & 0x0f;
            p[1] = s >> 4;
        }
        let n = codes.len();
        if n % 2 == 1 {
            codes[n - 1] = src[n / 2] & 0x0f;
        }
        return;
    }
    let full = codes.len() / 8;
    let (head, rest) = codes.split_at_mut(full * 8);
    for (c, s) in head.chunks_exact_mut(8).zip(src.chunks_exact(B)) {
        let mut bytes = [0u8; 8];
        bytes[..B].copy_from_slice(s);
        let acc = u64::from_le_bytes(bytes);
        for (i, q) in c.iter_mut().enumerate() {
            *q = ((acc >> (i * B)) & mask) as u8;
        }
    }
    if !rest.is_empty() {
        let s = &src[full * B..];
        let mut bytes = [0u8; 8];
        bytes[..s.len()].copy_from_slice(s);
        let acc = u64::from_le_bytes(bytes);
        for (i, q) in rest.iter_mut().enumerate() {
            *q = ((acc >> (i * B)) & mask) as u8;
        }
    }
}

/// Scalar reference of [`pack_row`]: one bit at a time.
pub fn pack_row_ref(codes: &[u8], bits: u32, dst: &mut [u8]) {
    assert!((1..=8).contains(&bits), "bits is {bits}, not in 1..=8");
    let b = bits as usize;
    let nbytes = packed_row_bytes(codes.len(), bits);
    dst[..nbytes].fill(0);
    for (j, &q) in codes.iter().enumerate() {
        for k in 0..b {
            if (q >> k) & 1 == 1 {
                let bit = j * b + k;
                dst[bit / 8] |= 1 << (bit % 8);
            }
        }
    }
}

/// Scalar reference of [`unpack_row`]: one bit at a time.
pub fn unpack_row_ref(src: &[u8], bits: u32, codes: &mut [u8]) {
    assert!((1..=8).contains(&bits), "bits is {bits}, not in 1..=8");
    let b = bits as usize;
    assert!(src.len() >= packed_row_bytes(codes.len(), bits));
    for (j, q) in codes.iter_mut().enumerate() {
        let mut v = 0u8;
        for k in 0..b {
            let bit = j * b + k;
            v |= ((src[bit / 8] >> (bit % 8)) & 1) << k;
        }
        *q = v;
    }
}
