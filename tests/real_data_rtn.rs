//! Real data: the round-to-nearest methods on every layer of `tests/data/minilm`, through
//! `weight::quantize` and `QuantizedWeight::dequantize`. The relative output error
//! `||X W^T - X Q(W)^T||_F^2 / ||X W^T||_F^2` on the layer's 2048 real input tokens must be within 1% of
//! the reference figures published with the data (its README): INT8 absmax/127 per output channel,
//! INT4 groups of 128 with integer zero points, FP8 E4M3 with one scale for the whole matrix.
mod common;

use common::{layer, Layer, OutputMeter, LAYERS};
use quant::algos::QuantOptions;
use quant::method::QuantMethod;
use quant::weight::quantize;

/// Quantizes and dequantizes `w` (`rows x cols`) with `method`; the round trip keeps the shape.
fn round_trip(method: QuantMethod, w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let q = quantize(&method, &QuantOptions::default(), w, rows, cols, None)
        .unwrap_or_else(|e| panic!("{method}: {e}"));
    assert_eq!((q.rows, q.cols), (rows, cols));
    q.dequantize_to_vec().unwrap()
}

fn check_layer(l: Layer) {
    let w = l.weight();
    let x = l.activations();
    let meter = OutputMeter::new(&x, l.cols);
    assert_eq!(meter.n_tokens(), 2048);
    let w_norm = meter.sq_norm_f32(&w);

    let int8 = round_trip(
        QuantMethod::Int8Symmetric { group_size: 0 },
        &w,
        l.rows,
        l.cols,
    );
    let int4 = round_trip(
        QuantMethod::Int4Asymmetric { group_size: 128 },
        &w,
        l.rows,
        l.cols,
    );
    // Per tensor: the whole matrix as one row, one scale.
    let fp8 = round_trip(
        QuantMethod::Fp8E4m3 { group_size: 0 },
        &w,
        1,
        l.rows * l.cols,
    );

    let results = [
        (
            "INT8 per channel",
            meter.relative_error(&w, &int8, w_norm),
            l.int8_per_channel,
        ),
        (
            "INT4 g128",
            meter.relative_error(&w, &int4, w_norm),
            l.int4_g128,
        ),
        (
            "FP8 per tensor",
            meter.relative_error(&w, &fp8, w_norm),
            l.fp8_per_tensor,
        ),
    ];
    for (what, got, want) in results {
        eprintln!("{}: {what}: {got:.4e} (reference {want:.4e})", l.name);
        assert!(
            common::within_relative(got, want, 0.01),
            "{}: {what}: relative output error {got:.5e}, reference {want:.5e} (more than 1% apart)",
            l.name
        );
    }
    // The methods rank as their precision says.
    assert!(results[0].1 < results[2].1 && results[2].1 < results[1].1);
}

#[test]
fn layer0_query() {
    check_layer(layer("encoder.layer.0.attention.self.query"));
}

#[test]
fn layer0_attention_output() {
    check_layer(layer("encoder.layer.0.attention.output.dense"));
}

#[test]
fn layer0_intermediate() {
    check_layer(layer("encoder.layer.0.intermediate.dense"));
}

#[test]
fn layer0_output() {
    check_layer(layer("encoder.layer.0.output.dense"));
}

#[test]
fn layer5_query() {
    check_layer(layer("encoder.layer.5.attention.self.query"));
}

#[test]
fn layer5_value() {
    check_layer(layer("encoder.layer.5.attention.self.value"));
}

#[test]
fn layer5_intermediate() {
    check_layer(layer("encoder.layer.5.intermediate.dense"));
}

#[test]
fn every_layer_of_the_readme_is_covered() {
    assert_eq!(LAYERS.len(), 7);
    let text = std::fs::read_to_string(common::minilm_dir().join("README.md")).unwrap();
    for l in LAYERS {
        assert!(
            text.contains(&format!("| {} | {} x {} |", l.name, l.rows, l.cols)),
            "{}",
            l.name
        );
        assert!(
            text.contains(&format!("{:.4e}", l.int4_g128).replace("e-", "e-0")),
            "{}",
            l.name
        );
    }
}

/// The Gram-matrix shortcut of `OutputMeter` agrees with the plain token-by-token product.
#[test]
fn output_meter_matches_the_direct_product() {
    let l = layer("encoder.layer.0.attention.self.query");
    let w = l.weight();
    let x = l.activations();
    let x = &x[..64 * l.cols];
    let q = round_trip(
        QuantMethod::Int4Asymmetric { group_size: 128 },
        &w,
        l.rows,
        l.cols,
    );
    let meter = OutputMeter::new(x, l.cols);
    let fast = meter.relative_error(&w, &q, meter.sq_norm_f32(&w));
    let direct = common::relative_output_error_direct(x, &w, &q, l.cols);
    assert!(
        common::within_relative(fast, direct, 1e-9),
        "{fast:e} vs {direct:e}"
    );
}
