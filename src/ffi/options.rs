//! C handles for the optional knobs (`quant_options`).
use crate::algos::QuantOptions;

/// Optional knobs of the quantization methods. Opaque; create with `quant_options_new` (published
/// defaults), release with `quant_options_free`. NULL wherever an options pointer is taken means the
/// defaults. May be read from several threads at once, but not set while read.
#[allow(dead_code)] // read by quant_quantize and the option setters as they land
pub struct quant_options {
    pub(crate) inner: QuantOptions,
}
