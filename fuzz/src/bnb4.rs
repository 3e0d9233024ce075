//! The arguments the bitsandbytes 4-bit targets (`bnb4`, `bnb4_nested`) pick alike: the code book, the
//! length, the block size and the source's element type, and the checks of the size queries.
use quant::kernels::nf4::{check_blocksize, Bnb4Type};

use crate::{clear_detail, detail, Input, Source, MAX_ELEMS};

pub struct Bnb4Args {
    /// `quant_type`: mostly FP4 or NF4, sometimes unknown.
    pub code: i32,
    pub n: usize,
    pub blocksize: usize,
    /// `src_dtype`: mostly f32, f16 or bf16, sometimes unknown.
    pub dtype: i32,
    /// The code book `code` names, if it names one.
    pub ty: Option<Bnb4Type>,
    /// `n` and the block size are accepted, and `n` small enough for buffers that hold it.
    pub valid: bool,
    /// `n` and the block size are accepted (whatever `n`'s size).
    accepted: bool,
}

impl Bnb4Args {
    /// Reads the code book, `n` (mostly up to `max_n`), the block size (mostly a power of two from 32
    /// to 8192, of which 8192 is not accepted; sometimes any size) and the element type.
    pub fn read(inp: &mut Input, max_n: usize) -> Self {
        let code = inp.enum_i32(3);
        let n = inp.size(max_n);
        let blocksize = match inp.u8() % 10 {
            0 => inp.size(5000),
            k => 16usize << k,
        };
        let dtype = inp.enum_i32(3);
        let accepted = n > 0 && check_blocksize(blocksize).is_ok();
        Self {
            code,
            n,
            blocksize,
            dtype,
            ty: Bnb4Type::from_code(code).ok(),
            valid: accepted && n <= MAX_ELEMS * 4,
            accepted,
        }
    }

    /// Calls the size query `count_of(n, blocksize)` and checks its answer: `from_blocks` of the
    /// block count `ceil(n / blocksize)` when `n` and the block size are accepted, else 0 with a
    /// detail. Returns the answer.
    pub fn query_count(
        &self,
        count_of: extern "C" fn(usize, usize) -> usize,
        from_blocks: impl FnOnce(usize) -> usize,
    ) -> usize {
        clear_detail();
        let count = count_of(self.n, self.blocksize);
        if self.accepted {
            assert_eq!(count, from_blocks(self.n.div_ceil(self.blocksize)));
        } else {
            assert!(count == 0 && !detail().is_empty());
        }
        count
    }

    /// The source: `n` elements when the arguments are valid, else 16 (the call must fail first).
    pub fn read_source(&self, inp: &mut Input) -> Source {
        Source::read(inp, if self.valid { self.n } else { 16 })
    }
}
