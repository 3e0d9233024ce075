//! C handles for calibration statistics (`quant_calib`).
use crate::calib::Calibration;

/// Activation statistics for one layer input of width `cols`. Opaque; create with `quant_calib_new`,
/// release with `quant_calib_free`. May be read (quantized against) from several threads at once, but
/// not written (`quant_calib_add`) while read.
#[allow(dead_code)] // read by quant_quantize and the calibration exports as they land
pub struct quant_calib {
    pub(crate) inner: Calibration,
}
