//! The basic types through the safe Rust API: levels, methods, memory estimates and the per-layer
//! configuration, with their edge cases.
use quant::error::{QuantError, QUANT_ERR_INVALID_ARGUMENT};
use quant::level::QuantizationLevel;
use quant::method::{QuantConfig, QuantMethod};
use quant::QuantError::InvalidArgument;

fn detail(err: QuantError) -> String {
    assert_eq!(err.status(), QUANT_ERR_INVALID_ARGUMENT, "{err:?}");
    err.to_string()
}

const INT8: QuantMethod = QuantMethod::Int8Symmetric { group_size: 0 };
const INT4: QuantMethod = QuantMethod::Int4Asymmetric { group_size: 128 };
const FP8: QuantMethod = QuantMethod::Fp8E4m3 { group_size: 0 };
const AWQ: QuantMethod = QuantMethod::Awq {
    group_size: 128,
    bits: 4,
};
const SQ: QuantMethod = QuantMethod::SmoothQuant {
    alpha: 0.5,
    group_size: 0,
};
const GPTQ: QuantMethod = QuantMethod::Gptq {
    group_size: 128,
    bits: 4,
};

// ---------------------------------------------------------------- levels

#[test]
fn level_bits_and_reduction_factor() {
    use QuantizationLevel::*;
    let table = [
        (Fp32, 32, 1.0, "FP32"),
        (Fp16, 16, 2.0, "FP16"),
        (Bf16, 16, 2.0, "BF16"),
        (Int8, 8, 4.0, "INT8"),
        (Int4, 4, 8.0, "INT4"),
    ];
    for (level, bits, factor, name) in table {
        assert_eq!(level.bits_per_param(), bits);
        assert_eq!(level.memory_reduction_factor(), factor);
        assert_eq!(level.to_string(), name);
        assert_eq!(level.c_name().to_str().unwrap(), name);
    }
}

#[test]
fn level_from_bits() {
    use QuantizationLevel::*;
    assert_eq!(QuantizationLevel::try_from(32u32).unwrap(), Fp32);
    // 16 bits is FP16, never BF16.
    assert_eq!(QuantizationLevel::try_from(16u32).unwrap(), Fp16);
    assert_eq!(QuantizationLevel::try_from(8u32).unwrap(), Int8);
    assert_eq!(QuantizationLevel::try_from(4u32).unwrap(), Int4);
    for bad in [0u32, 1, 2, 3, 5, 7, 12, 15, 17, 31, 33, 64, u32::MAX] {
        let err = QuantizationLevel::try_from(bad).unwrap_err();
        assert!(detail(err).contains(&bad.to_string()));
    }
}

#[test]
fn level_codes_round_trip_and_reject_unknown_values() {
    for (i, level) in QuantizationLevel::all().iter().enumerate() {
        assert_eq!(level.code(), i as i32);
        assert_eq!(QuantizationLevel::from_code(i as i32), Some(*level));
    }
    for bad in [-1, 5, 6, 100, i32::MIN, i32::MAX] {
        assert_eq!(QuantizationLevel::from_code(bad), None);
    }
}

// ---------------------------------------------------------------- methods

#[test]
fn seed_display_strings() {
    assert_eq!(INT8.to_string(), "INT8-Symmetric");
    assert_eq!(INT4.to_string(), "INT4-Asymmetric");
    assert_eq!(FP8.to_string(), "FP8-E4M3");
    assert_eq!(AWQ.to_string(), "AWQ(group=128)");
    assert_eq!(SQ.to_string(), "SmoothQuant(α=0.50)");
    assert_eq!(GPTQ.to_string(), "GPTQ(4bit, group=128)");
}

#[test]
fn display_details() {
    // The group size of the round-to-nearest kinds and of SmoothQuant is not shown.
    assert_eq!(
        QuantMethod::Int8Symmetric { group_size: 64 }.to_string(),
        "INT8-Symmetric"
    );
    assert_eq!(
        QuantMethod::SmoothQuant {
            alpha: 0.85,
            group_size: 128
        }
        .to_string(),
        "SmoothQuant(α=0.85)"
    );
    // Two decimals, rounded as Rust's formatter does.
    assert_eq!(
        QuantMethod::SmoothQuant {
            alpha: 1.0,
            group_size: 0
        }
        .to_string(),
        "SmoothQuant(α=1.00)"
    );
    // AWQ shows its bits only when they differ from the published 4.
    assert_eq!(
        QuantMethod::Awq {
            group_size: 64,
            bits: 3
        }
        .to_string(),
        "AWQ(3bit, group=64)"
    );
    assert_eq!(
        QuantMethod::Gptq {
            group_size: 32,
            bits: 3
        }
        .to_string(),
        "GPTQ(3bit, group=32)"
    );
}

#[test]
fn seed_bits_per_weight() {
    assert_eq!(INT8.bits_per_weight(), 8);
    assert_eq!(INT4.bits_per_weight(), 4);
    assert_eq!(FP8.bits_per_weight(), 8);
    assert_eq!(AWQ.bits_per_weight(), 4);
    assert_eq!(SQ.bits_per_weight(), 8);
    assert_eq!(GPTQ.bits_per_weight(), 4);
    let awq3 = QuantMethod::Awq {
        group_size: 128,
        bits: 3,
    };
    assert_eq!(awq3.bits_per_weight(), 3);
    let gptq8 = QuantMethod::Gptq {
        group_size: 128,
        bits: 8,
    };
    assert_eq!(gptq8.bits_per_weight(), 8);
}

#[test]
fn seed_compression_ratio() {
    assert!((INT8.compression_ratio() - 2.0).abs() < 1e-10);
    assert!((INT4.compression_ratio() - 4.0).abs() < 1e-10);
    assert_eq!(FP8.compression_ratio(), 2.0);
    assert_eq!(AWQ.compression_ratio(), 4.0);
    assert_eq!(SQ.compression_ratio(), 2.0);
    let gptq3 = QuantMethod::Gptq {
        group_size: 128,
        bits: 3,
    };
    assert_eq!(gptq3.compression_ratio(), 16.0 / 3.0);
    // An invalid 0-bit method gives 0, not infinity.
    let gptq0 = QuantMethod::Gptq {
        group_size: 128,
        bits: 0,
    };
    assert_eq!(gptq0.compression_ratio(), 0.0);
}

#[test]
fn seed_validation() {
    assert!(INT8.validate().is_ok());
    assert!(QuantMethod::Awq {
        group_size: 0,
        bits: 4
    }
    .validate()
    .is_err());
    assert!(QuantMethod::SmoothQuant {
        alpha: 1.5,
        group_size: 0
    }
    .validate()
    .is_err());
    assert!(SQ.validate().is_ok());
    assert!(QuantMethod::Gptq {
        group_size: 0,
        bits: 4
    }
    .validate()
    .is_err());
    assert!(QuantMethod::Gptq {
        group_size: 128,
        bits: 0
    }
    .validate()
    .is_err());
    assert!(QuantMethod::Gptq {
        group_size: 128,
        bits: 9
    }
    .validate()
    .is_err());
}

#[test]
fn validation_edge_cases_name_the_rule() {
    // Every valid method of every kind.
    for m in [INT8, INT4, FP8, AWQ, SQ, GPTQ] {
        assert!(m.validate().is_ok(), "{m}");
    }
    // Round-to-nearest kinds accept any group size, 0 meaning per row.
    for g in [0, 1, 7, 128, usize::MAX] {
        for m in [
            QuantMethod::Int8Symmetric { group_size: g },
            QuantMethod::Int4Asymmetric { group_size: g },
            QuantMethod::Fp8E4m3 { group_size: g },
        ] {
            assert!(m.validate().is_ok(), "{m:?}");
        }
    }
    // Bits: [1, 8] for AWQ and GPTQ, boundaries included.
    for bits in 1..=8 {
        assert!(QuantMethod::Awq {
            group_size: 1,
            bits
        }
        .validate()
        .is_ok());
        assert!(QuantMethod::Gptq {
            group_size: 1,
            bits
        }
        .validate()
        .is_ok());
    }
    for bits in [0, 9, 16, u32::MAX] {
        let e = detail(
            QuantMethod::Awq {
                group_size: 128,
                bits,
            }
            .validate()
            .unwrap_err(),
        );
        assert!(e.contains("AWQ bits must be in [1, 8]") && e.contains(&bits.to_string()));
        let e = detail(
            QuantMethod::Gptq {
                group_size: 128,
                bits,
            }
            .validate()
            .unwrap_err(),
        );
        assert!(e.contains("GPTQ bits must be in [1, 8]"), "{e}");
    }
    let e = detail(
        QuantMethod::Awq {
            group_size: 0,
            bits: 4,
        }
        .validate()
        .unwrap_err(),
    );
    assert!(e.contains("AWQ group_size must be > 0"), "{e}");
    let e = detail(
        QuantMethod::Gptq {
            group_size: 0,
            bits: 4,
        }
        .validate()
        .unwrap_err(),
    );
    assert!(e.contains("GPTQ group_size must be > 0"), "{e}");
    // Alpha: [0, 1], finite; boundaries included; -0.0 is inside.
    for alpha in [0.0, -0.0, 0.5, 1.0, f64::MIN_POSITIVE] {
        assert!(QuantMethod::SmoothQuant {
            alpha,
            group_size: 0
        }
        .validate()
        .is_ok());
    }
    for alpha in [
        -0.1,
        1.1,
        1.0 + f64::EPSILON,
        -f64::MIN_POSITIVE,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ] {
        let e = detail(
            QuantMethod::SmoothQuant {
                alpha,
                group_size: 0,
            }
            .validate()
            .unwrap_err(),
        );
        assert!(e.contains("SmoothQuant alpha must be"), "{e}");
    }
}

#[test]
fn calibration_and_zero_point_traits() {
    assert!(!INT8.needs_calibration() && !INT4.needs_calibration() && !FP8.needs_calibration());
    assert!(AWQ.needs_calibration() && SQ.needs_calibration() && GPTQ.needs_calibration());
    assert!(INT4.has_zero_points() && AWQ.has_zero_points() && GPTQ.has_zero_points());
    assert!(!INT8.has_zero_points() && !FP8.has_zero_points() && !SQ.has_zero_points());
    assert_eq!(INT4.group_size(), 128);
    assert_eq!(SQ.group_size(), 0);
}

#[test]
fn effective_bits_arithmetic() {
    // INT8 per row of 384: 8 + 32/384.
    assert_eq!(INT8.effective_bits(384).unwrap(), 8.0 + 32.0 / 384.0);
    // INT4 groups of 128 over 384 columns: 3 groups of (32-bit scale + 4-bit zero) per row.
    assert_eq!(INT4.effective_bits(384).unwrap(), 4.0 + 3.0 * 36.0 / 384.0);
    // The last group may be shorter: 300 columns = 3 groups (128, 128, 44).
    assert_eq!(INT4.effective_bits(300).unwrap(), 4.0 + 3.0 * 36.0 / 300.0);
    // A group larger than a row is one group per row.
    assert_eq!(INT4.effective_bits(100).unwrap(), 4.0 + 36.0 / 100.0);
    // FP8 per tensor (rows = 1, cols = everything): 8 + 32 / n.
    assert_eq!(FP8.effective_bits(147_456).unwrap(), 8.0 + 32.0 / 147_456.0);
    // AWQ 3 bits, groups of 128: zero points cost 3 bits; input scales are not counted.
    let awq3 = QuantMethod::Awq {
        group_size: 128,
        bits: 3,
    };
    assert_eq!(
        awq3.effective_bits(1536).unwrap(),
        3.0 + 12.0 * 35.0 / 1536.0
    );
    // SmoothQuant is symmetric INT8 (no zero points), per row by default.
    assert_eq!(SQ.effective_bits(1536).unwrap(), 8.0 + 32.0 / 1536.0);
    let sq_g = QuantMethod::SmoothQuant {
        alpha: 0.5,
        group_size: 64,
    };
    assert_eq!(sq_g.effective_bits(128).unwrap(), 8.0 + 2.0 * 32.0 / 128.0);
    // GPTQ 4 bits, groups of 128: the classic 4.28125 (4 + 36/128).
    assert_eq!(GPTQ.effective_bits(4096).unwrap(), 4.28125);
    // Group 1: every weight carries its own scale and zero.
    let g1 = QuantMethod::Int4Asymmetric { group_size: 1 };
    assert_eq!(g1.effective_bits(10).unwrap(), 4.0 + 36.0);
    // Always more than nominal.
    for m in [INT8, INT4, FP8, AWQ, SQ, GPTQ] {
        for cols in [1, 2, 127, 128, 129, 4096] {
            assert!(m.effective_bits(cols).unwrap() > f64::from(m.bits_per_weight()));
        }
    }
}

#[test]
fn effective_bits_errors() {
    assert!(detail(INT8.effective_bits(0).unwrap_err()).contains("cols"));
    let bad = QuantMethod::Gptq {
        group_size: 128,
        bits: 0,
    };
    assert!(detail(bad.effective_bits(128).unwrap_err()).contains("GPTQ bits"));
}

#[test]
fn seed_estimate_memory() {
    let (fp16, quant) = INT4.estimate_memory(1_000_000).unwrap();
    assert_eq!(fp16, 2_000_000);
    assert_eq!(quant, 500_000);
    assert_eq!(INT8.estimate_memory(3).unwrap(), (6, 3));
    // ceil(n * bits / 8): 3 weights at 3 bits = 9 bits = 2 bytes.
    let gptq3 = QuantMethod::Gptq {
        group_size: 128,
        bits: 3,
    };
    assert_eq!(gptq3.estimate_memory(3).unwrap(), (6, 2));
    assert_eq!(INT4.estimate_memory(1).unwrap(), (2, 1));
    assert_eq!(INT4.estimate_memory(0).unwrap(), (0, 0));
}

#[test]
fn estimate_memory_overflow_is_an_error_not_a_wrap() {
    let max = usize::MAX;
    assert!(detail(INT4.estimate_memory(max).unwrap_err()).contains("does not fit"));
    assert!(INT8.estimate_memory(max / 2 + 1).is_err());
    // The largest count whose FP16 size fits: the quantized size is computed without overflow even
    // though n * bits itself exceeds usize.
    let n = max / 2;
    let (fp16, quant) = INT8.estimate_memory(n).unwrap();
    assert_eq!(fp16, n * 2);
    assert_eq!(quant, n);
    let (_, q4) = INT4.estimate_memory(n).unwrap();
    assert_eq!(q4, n.div_ceil(2));
    // An invalid method is rejected too.
    let bad = QuantMethod::Awq {
        group_size: 0,
        bits: 4,
    };
    assert!(matches!(bad.estimate_memory(10), Err(InvalidArgument(_))));
}

// ---------------------------------------------------------------- configuration

#[test]
fn seed_quant_config() {
    let mut config = QuantConfig::new(INT8);
    config.set_layer_method("lm_head", FP8);
    config.set_layer_method("layers.0.attn", GPTQ);
    assert_eq!(config.method_for_layer("layers.0.attn"), &GPTQ);
    assert_eq!(config.method_for_layer("layers.1.attn"), &INT8);
    assert_eq!(config.method_for_layer("lm_head"), &FP8);
    assert!(config.validate().is_ok());
}

#[test]
fn seed_quant_config_invalid_layer() {
    let mut config = QuantConfig::new(INT8);
    config.set_layer_method(
        "bad_layer",
        QuantMethod::Awq {
            group_size: 0,
            bits: 4,
        },
    );
    let e = detail(config.validate().unwrap_err());
    assert!(
        e.contains("layer 'bad_layer'") && e.contains("AWQ group_size"),
        "{e}"
    );
}

#[test]
fn config_validation_is_deterministic_and_checks_the_default() {
    let bad_sq = QuantMethod::SmoothQuant {
        alpha: f64::NAN,
        group_size: 0,
    };
    let bad_gptq = QuantMethod::Gptq {
        group_size: 128,
        bits: 9,
    };
    // Several bad layers: the first in sorted name order is reported, whatever the insertion order.
    for order in [["zeta", "alpha", "mid"], ["mid", "zeta", "alpha"]] {
        let mut config = QuantConfig::new(INT8);
        for name in order {
            config.set_layer_method(name, if name == "mid" { GPTQ } else { bad_gptq });
        }
        config.set_layer_method("beta", bad_sq);
        let e = detail(config.validate().unwrap_err());
        assert!(e.starts_with("layer 'alpha': GPTQ bits"), "{e}");
    }
    // A bad default is reported before any layer.
    let mut config = QuantConfig::new(bad_sq);
    config.set_layer_method("a", bad_gptq);
    let e = detail(config.validate().unwrap_err());
    assert!(e.starts_with("default method: SmoothQuant alpha"), "{e}");
    // Overriding a bad layer with a good method fixes the configuration.
    let mut config = QuantConfig::new(INT8);
    config.set_layer_method("x", bad_gptq);
    assert!(config.validate().is_err());
    config.set_layer_method("x", AWQ);
    assert!(config.validate().is_ok());
    assert_eq!(config.per_layer_config.len(), 1);
}

#[test]
fn fallible_set_layer_method_matches_the_plain_one() {
    let mut a = QuantConfig::new(INT8);
    let mut b = QuantConfig::new(INT8);
    for (name, m) in [("q", AWQ), ("k", GPTQ), ("q", SQ), ("", FP8), ("ünï", INT4)] {
        a.set_layer_method(name, m);
        b.try_set_layer_method(name, m).unwrap();
    }
    assert_eq!(a, b);
    assert_eq!(b.method_for_layer("q"), &SQ);
    assert_eq!(b.method_for_layer(""), &FP8);
    assert_eq!(b.method_for_layer("ünï"), &INT4);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn effective_bits_matches_the_explicit_count(cols in 1usize..5000, g in 0usize..600, bits in 1u32..=8) {
            // Count the storage of one row explicitly, group by group.
            let m = QuantMethod::Gptq { group_size: g.max(1), bits };
            let group = g.max(1).min(cols);
            let mut storage = 0u64;
            let mut start = 0;
            while start < cols {
                storage += 32 + u64::from(bits);
                start += group;
            }
            storage += cols as u64 * u64::from(bits);
            let want = storage as f64 / cols as f64;
            let got = m.effective_bits(cols).unwrap();
            prop_assert!((got - want).abs() <= 1e-12 * want, "{got} vs {want}");
        }

        #[test]
        fn estimate_memory_is_exact(n in 0usize..(1usize << 40), bits in 1u32..=8) {
            let m = QuantMethod::Gptq { group_size: 128, bits };
            let (fp16, q) = m.estimate_memory(n).unwrap();
            prop_assert_eq!(fp16, n * 2);
            prop_assert_eq!(q as u128, (n as u128 * u128::from(bits)).div_ceil(8));
        }

        #[test]
        fn alpha_validation_is_the_closed_unit_interval(alpha in -2.0f64..2.0) {
            let ok = QuantMethod::SmoothQuant { alpha, group_size: 0 }.validate().is_ok();
            prop_assert_eq!(ok, (0.0..=1.0).contains(&alpha));
        }
    }
}
