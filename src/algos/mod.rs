//! Calibration-based algorithms: GPTQ, AWQ and SmoothQuant, as pure functions over slices.
