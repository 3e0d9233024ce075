//! The plan: a target type for every tensor, decided and validated in full before any work.
//!
//! Two sources, in this order:
//! 1. Rules (`--rules FILE`): `PATTERN = TYPE` lines, first match wins. A pattern is a glob over the
//!    GGUF tensor name (`*` any run of characters, `?` one character, `[0-9]` a class,
//!    `{a,b,c}` alternatives, everything else literal). TYPE is a ggml type name (F32, F16, BF16,
//!    Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, MXFP4, NVFP4, TQ1_0,
//!    TQ2_0) or `keep` (copy the tensor as it is), optionally followed by the method for that tensor, `rtn` or `gptq`
//!    (`blk.*.ffn_down.weight = Q4_K gptq`; without one the tensor follows `--method`). Blank lines and
//!    `#` comments are ignored; patterns and types may be quoted (`"blk.*.ffn_down.weight" = "Q6_K"`).
//!    A rule matching no tensor, an unknown type, or a tensor whose rows a type cannot take is an error.
//! 2. The mix (`--type T`), llama-quantize's choice for its file type `T` (src/llama-quant.cpp,
//!    `llama_tensor_get_type`): 1-D tensors, norms and a few small tables keep their type; the output
//!    (and the token embedding when it is tied to it) gets Q6_K (Q8_0 for a Q8_0 file or rows that do
//!    not fit the file's blocks); the K mixes raise some attn_v, attn_output and ffn_down tensors
//!    (Q2_K: attn_v Q3_K or Q4_K, attn_output and ffn_down Q3_K; Q3_K_M/L, Q4_K_S/M, Q5_K_M: the
//!    first or every few layers one or two types up); a tensor whose rows do not fit a 256-value block
//!    falls back (Q2_K, Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0) and to F16 when even
//!    32 does not fit. Without `--type`, tensors no rule names are kept.
//!
//! A tensor whose target equals its type is copied, not requantized (as llama-quantize does).
use std::fmt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use crate::model::DType;

pub use crate::model::ModelInfo;
/// A tensor the plan decides for.
pub use crate::model::TensorMeta as Input;

/// llama-quantize's file types (`llama_ftype`) that this tool produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum Mix {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2_K,
    Q3_K_S,
    Q3_K_M,
    Q3_K_L,
    Q4_K_S,
    Q4_K_M,
    Q5_K_S,
    Q5_K_M,
    Q6_K,
}

impl Mix {
    pub const ALL: [Mix; 17] = [
        Mix::F32,
        Mix::F16,
        Mix::BF16,
        Mix::Q4_0,
        Mix::Q4_1,
        Mix::Q5_0,
        Mix::Q5_1,
        Mix::Q8_0,
        Mix::Q2_K,
        Mix::Q3_K_S,
        Mix::Q3_K_M,
        Mix::Q3_K_L,
        Mix::Q4_K_S,
        Mix::Q4_K_M,
        Mix::Q5_K_S,
        Mix::Q5_K_M,
        Mix::Q6_K,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mix::F32 => "F32",
            Mix::F16 => "F16",
            Mix::BF16 => "BF16",
            Mix::Q4_0 => "Q4_0",
            Mix::Q4_1 => "Q4_1",
            Mix::Q5_0 => "Q5_0",
            Mix::Q5_1 => "Q5_1",
            Mix::Q8_0 => "Q8_0",
            Mix::Q2_K => "Q2_K",
            Mix::Q3_K_S => "Q3_K_S",
            Mix::Q3_K_M => "Q3_K_M",
            Mix::Q3_K_L => "Q3_K_L",
            Mix::Q4_K_S => "Q4_K_S",
            Mix::Q4_K_M => "Q4_K_M",
            Mix::Q5_K_S => "Q5_K_S",
            Mix::Q5_K_M => "Q5_K_M",
            Mix::Q6_K => "Q6_K",
        }
    }

    pub fn parse(s: &str) -> Result<Mix> {
        Mix::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<_> = Mix::ALL.iter().map(|m| m.name()).collect();
                anyhow!("unknown --type {s}: use one of {}", names.join(", "))
            })
    }

    /// `general.file_type` as llama-quantize writes it (`enum llama_ftype`).
    pub fn file_type(self) -> u32 {
        match self {
            Mix::F32 => 0,
            Mix::F16 => 1,
            Mix::Q4_0 => 2,
            Mix::Q4_1 => 3,
            Mix::Q8_0 => 7,
            Mix::Q5_0 => 8,
            Mix::Q5_1 => 9,
            Mix::Q2_K => 10,
            Mix::Q3_K_S => 11,
            Mix::Q3_K_M => 12,
            Mix::Q3_K_L => 13,
            Mix::Q4_K_S => 14,
            Mix::Q4_K_M => 15,
            Mix::Q5_K_S => 16,
            Mix::Q5_K_M => 17,
            Mix::Q6_K => 18,
            Mix::BF16 => 32,
        }
    }

    /// The type most tensors get (`llama_ftype_get_default_type`).
    pub fn default_type(self) -> DType {
        match self {
            Mix::F32 => DType::F32,
            Mix::F16 => DType::F16,
            Mix::BF16 => DType::BF16,
            Mix::Q4_0 => DType::Q4_0,
            Mix::Q4_1 => DType::Q4_1,
            Mix::Q5_0 => DType::Q5_0,
            Mix::Q5_1 => DType::Q5_1,
            Mix::Q8_0 => DType::Q8_0,
            Mix::Q2_K => DType::Q2_K,
            Mix::Q3_K_S | Mix::Q3_K_M | Mix::Q3_K_L => DType::Q3_K,
            Mix::Q4_K_S | Mix::Q4_K_M => DType::Q4_K,
            Mix::Q5_K_S | Mix::Q5_K_M => DType::Q5_K,
            Mix::Q6_K => DType::Q6_K,
        }
    }
}

/// The types this tool writes: the plain float types and the library's ggml block types.
pub fn can_write(t: DType) -> bool {
    matches!(t, DType::F32 | DType::F16 | DType::BF16) || t.ggml().is_some()
}

/// A glob pattern (see the module docs).
#[derive(Clone, Debug)]
pub struct Glob {
    text: String,
    tokens: Vec<Tok>,
}

#[derive(Clone, Debug)]
enum Tok {
    Lit(char),
    Any,
    One,
    Class(Vec<(char, char)>, bool),
    Alt(Vec<Vec<Tok>>),
}

impl Glob {
    pub fn new(text: &str) -> Result<Glob> {
        let chars: Vec<char> = text.chars().collect();
        let (tokens, end) =
            parse_glob(&chars, 0, false).with_context(|| format!("pattern '{text}'"))?;
        if end != chars.len() {
            bail!("pattern '{text}': unmatched '}}' at {end}");
        }
        Ok(Glob {
            text: text.to_string(),
            tokens,
        })
    }

    pub fn matches(&self, s: &str) -> bool {
        let s: Vec<char> = s.chars().collect();
        match_toks(&self.tokens, &s)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses until the end, or (inside braces) until `,` or `}`; returns the tokens and the position.
fn parse_glob(c: &[char], mut i: usize, in_alt: bool) -> Result<(Vec<Tok>, usize)> {
    let mut out = vec![];
    while i < c.len() {
        match c[i] {
            '*' => out.push(Tok::Any),
            '?' => out.push(Tok::One),
            '[' => {
                let mut j = i + 1;
                let neg = j < c.len() && (c[j] == '!' || c[j] == '^');
                if neg {
                    j += 1;
                }
                let mut ranges = vec![];
                while j < c.len() && (c[j] != ']' || ranges.is_empty()) {
                    if j + 2 < c.len() && c[j + 1] == '-' && c[j + 2] != ']' {
                        ranges.push((c[j], c[j + 2]));
                        j += 3;
                    } else {
                        ranges.push((c[j], c[j]));
                        j += 1;
                    }
                }
                if j >= c.len() {
                    bail!("unclosed '[' at {i}");
                }
                out.push(Tok::Class(ranges, neg));
                i = j;
            }
            '{' => {
                let mut alts = vec![];
                let mut j = i + 1;
                loop {
                    let (toks, end) = parse_glob(c, j, true)?;
                    alts.push(toks);
                    match c.get(end) {
                        Some(',') => j = end + 1,
                        Some('}') => {
                            i = end;
                            break;
                        }
                        _ => bail!("unclosed '{{' at {i}"),
                    }
                }
                out.push(Tok::Alt(alts));
            }
            ',' | '}' if in_alt => return Ok((out, i)),
            ch => out.push(Tok::Lit(ch)),
        }
        i += 1;
    }
    Ok((out, i))
}

fn match_toks(t: &[Tok], s: &[char]) -> bool {
    match t.first() {
        None => s.is_empty(),
        Some(Tok::Lit(c)) => s.first() == Some(c) && match_toks(&t[1..], &s[1..]),
        Some(Tok::One) => !s.is_empty() && match_toks(&t[1..], &s[1..]),
        Some(Tok::Class(r, neg)) => {
            !s.is_empty()
                && (r.iter().any(|&(a, b)| a <= s[0] && s[0] <= b) != *neg)
                && match_toks(&t[1..], &s[1..])
        }
        Some(Tok::Any) => (0..=s.len()).any(|k| match_toks(&t[1..], &s[k..])),
        Some(Tok::Alt(alts)) => alts.iter().any(|a| {
            let mut joined = a.clone();
            joined.extend_from_slice(&t[1..]);
            match_toks(&joined, s)
        }),
    }
}

/// What a rule asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Type(DType),
    Keep,
}

/// How a tensor is quantized, when a rule says so (otherwise `--method` decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Round-to-nearest by the type's quantizer.
    Rtn,
    /// GPTQ through the model (block linear layers of a GGUF Llama; needs a calibration text).
    Gptq,
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub pattern: Glob,
    pub target: Target,
    pub method: Option<Method>,
    /// Where the rule was written (file:line), for messages.
    pub origin: String,
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
}

/// Parses a rules text (see the module docs); `origin` names it in errors.
pub fn parse_rules(text: &str, origin: &str) -> Result<Vec<Rule>> {
    let mut rules = vec![];
    for (i, line) in text.lines().enumerate() {
        let at = format!("{origin}:{}", i + 1);
        let line = match line.find('#') {
            // A '#' inside quotes is part of the pattern.
            Some(p) if line[..p].matches('"').count() % 2 == 0 => &line[..p],
            _ => line,
        };
        if line.trim().is_empty() {
            continue;
        }
        let (pat, ty) = line
            .rsplit_once('=')
            .ok_or_else(|| anyhow!("{at}: expected PATTERN = TYPE, got '{}'", line.trim()))?;
        let (pat, ty) = (unquote(pat), ty.trim());
        if pat.is_empty() {
            bail!("{at}: empty pattern");
        }
        // `TYPE` or `TYPE METHOD` (the type possibly quoted).
        let (ty, method) = match ty.rsplit_once(char::is_whitespace) {
            Some((t, m)) if !t.trim().is_empty() => {
                let method = match unquote(m).to_ascii_lowercase().as_str() {
                    "rtn" => Method::Rtn,
                    "gptq" => Method::Gptq,
                    other => bail!("{at}: unknown method '{other}' (rtn or gptq)"),
                };
                (unquote(t), Some(method))
            }
            _ => (unquote(ty), None),
        };
        let target = if ty.eq_ignore_ascii_case("keep") {
            Target::Keep
        } else {
            let t = DType::from_name(ty).ok_or_else(|| anyhow!("{at}: unknown type '{ty}'"))?;
            if !can_write(t) {
                bail!(
                    "{at}: type {t} cannot be written (the quant library quantizes Q4_0, Q4_1, Q5_0, \
                     Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, MXFP4, NVFP4, TQ1_0, \
                     TQ2_0; F32, F16, BF16 are casts)"
                );
            }
            Target::Type(t)
        };
        let gptq_grid = matches!(target, Target::Type(t)
            if t.ggml().is_some_and(quant::algos::gptq::ggml_supported));
        if method == Some(Method::Gptq) && !gptq_grid {
            bail!(
                "{at}: gptq needs a GGUF block type with a grid (Q4_0 ... Q8_0, Q2_K ... Q6_K), \
                 not '{ty}'"
            );
        }
        rules.push(Rule {
            pattern: Glob::new(pat).with_context(|| at.clone())?,
            target,
            method,
            origin: at,
        });
    }
    Ok(rules)
}

pub fn read_rules(path: &Path) -> Result<Vec<Rule>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the rules", path.display()))?;
    parse_rules(&text, &path.display().to_string())
}

/// One tensor's decision.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub dims: Vec<u64>,
    pub src: DType,
    pub target: DType,
    /// Why: "rule file:line", "mix Q4_K_M", "fallback from Q4_K", "kept (1-D)" ...
    pub why: String,
    /// The method a rule asked for (`None`: `--method` decides).
    pub method: Option<Method>,
}

impl Entry {
    /// True when the data are copied as they are.
    pub fn is_copy(&self) -> bool {
        self.src == self.target
    }

    pub fn n_bytes(&self) -> u64 {
        self.target
            .bytes_for(self.dims.iter().product())
            .expect("validated")
    }
}

/// A validated plan, in the order the tensors are written.
#[derive(Clone, Debug)]
pub struct Plan {
    pub entries: Vec<Entry>,
    pub mix: Option<Mix>,
}

/// llama-quantize's tensor order (llama_model_loader's weight_name_comparer): by block number
/// (tensors outside blocks first), then by name.
pub fn llama_order(names: &mut [Input]) {
    fn layer(n: &str) -> i64 {
        n.strip_prefix("blk.")
            .and_then(|r| {
                let d: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
                let rest = &r[d.len()..];
                if rest.starts_with('.') {
                    d.parse().ok()
                } else {
                    None
                }
            })
            .unwrap_or(-1)
    }
    names.sort_by(|a, b| {
        (layer(&a.name), a.name.as_bytes()).cmp(&(layer(&b.name), b.name.as_bytes()))
    });
}

/// Whether llama-quantize quantizes this tensor at all (`tensor_allows_quantization`, the parts that
/// concern the architectures this tool reads).
fn allows_quantization(t: &Input) -> bool {
    let n = &t.name;
    if t.dims.len() < 2 || !n.ends_with("weight") {
        return false;
    }
    const KEEP: [&str; 12] = [
        "_norm.weight",
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "attn_rel_b.weight",
        "time_mix_",
        ".position_embd",
        ".patch_embd",
    ];
    !(KEEP.iter().any(|k| n.contains(k))
        || n == "position_embd.weight"
        || n == "token_types.weight")
}

#[derive(PartialEq, Clone, Copy)]
enum Category {
    Output,
    TokenEmbd,
    AttnQkv,
    AttnKvB,
    AttnV,
    AttnK,
    AttnQ,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Other,
}

fn category(n: &str) -> Category {
    use Category::*;
    if n == "output.weight" {
        return Output;
    }
    if n == "token_embd.weight" || n == "per_layer_token_embd.weight" {
        return TokenEmbd;
    }
    for (k, c) in [
        ("attn_qkv.weight", AttnQkv),
        ("attn_kv_b.weight", AttnKvB),
        ("attn_v.weight", AttnV),
        ("attn_k.weight", AttnK),
        ("attn_q.weight", AttnQ),
        ("attn_output.weight", AttnOutput),
        ("ffn_up", FfnUp),
        ("ffn_gate", FfnGate),
        ("ffn_down", FfnDown),
    ] {
        if n.contains(k) {
            return c;
        }
    }
    Other
}

fn use_more_bits(i: i64, n: i64) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// `tensor_type_fallback`: a type for rows the target's block does not divide.
fn fallback(ne0: u64, t: DType) -> (DType, bool) {
    let bs = t.block_size().unwrap_or(1) as u64;
    if ne0 % bs == 0 {
        return (t, false);
    }
    let f = match t {
        DType::Q2_K | DType::Q3_K => DType::Q4_0,
        DType::Q4_K => DType::Q5_0,
        DType::Q5_K => DType::Q5_1,
        DType::Q6_K => DType::Q8_0,
        t => t,
    };
    if ne0 % f.block_size().unwrap_or(1) as u64 != 0 {
        (DType::F16, true)
    } else {
        (f, true)
    }
}

struct MixState {
    n_attention_wv: i64,
    i_attention_wv: i64,
    i_ffn_down: i64,
    tied: bool,
    /// An importance matrix will be used (llama-quantize's `has_imatrix`).
    imatrix: bool,
}

/// llama-quantize's choice for one quantizable tensor (`llama_tensor_get_type_impl`), before the
/// fallback; the architectures' special cases this tool cannot reach (MXFP4 MoE, GLM5-next) and the
/// IQ files are left out. Falcon's, the 8-expert models' and the 70B ones' are kept as written there.
fn mix_type(mix: Mix, t: &Input, info: &ModelInfo, st: &mut MixState) -> DType {
    use Category::*;
    let default = mix.default_type();
    let quantized = !matches!(default, DType::F32 | DType::F16 | DType::BF16);
    if !quantized {
        return default;
    }
    let cat = category(&t.name);
    let falcon = info.arch == "falcon";
    let mut new = default;
    let attn_v_like = matches!(cat, AttnV | AttnQkv | AttnKvB);
    if cat == Output || (st.tied && cat == TokenEmbd) {
        let nx = t.dims[0];
        let bs = default.block_size().unwrap_or(1) as u64;
        if falcon || nx % bs != 0 || default == DType::Q8_0 {
            new = DType::Q8_0;
        } else {
            new = DType::Q6_K;
        }
    } else if cat == TokenEmbd {
    } else if attn_v_like {
        let i = st.i_attention_wv;
        match mix {
            Mix::Q2_K => {
                new = if info.n_gqa >= 4 {
                    DType::Q4_K
                } else {
                    DType::Q3_K
                }
            }
            Mix::Q3_K_M => new = if i < 2 { DType::Q5_K } else { DType::Q4_K },
            Mix::Q3_K_L => new = DType::Q5_K,
            Mix::Q4_K_M | Mix::Q5_K_M if use_more_bits(i, st.n_attention_wv) => new = DType::Q6_K,
            Mix::Q4_K_S if i < 4 => new = DType::Q5_K,
            _ => {}
        }
        // LLM_TYPE_70B (llama with 80 layers): attn_v is 8x smaller than attn_q there.
        if info.arch == "llama" && info.n_layer == 80 && matches!(new, DType::Q3_K | DType::Q4_K) {
            new = DType::Q5_K;
        }
        if info.n_expert == 8 {
            new = DType::Q8_0;
        }
        st.i_attention_wv += 1;
    } else if cat == AttnK {
        if info.n_expert == 8 {
            new = DType::Q8_0;
        }
    } else if cat == FfnDown {
        let i_layer = if info.n_expert > 1 {
            t.name
                .strip_prefix("blk.")
                .and_then(|r| r.split('.').next())
                .and_then(|d| d.parse().ok())
                .unwrap_or(st.i_ffn_down)
        } else {
            st.i_ffn_down
        };
        let n_layer = info.n_layer as i64;
        let more = use_more_bits(i_layer, n_layer);
        match mix {
            Mix::Q2_K => new = DType::Q3_K,
            Mix::Q3_K_M => {
                new = if i_layer < n_layer / 16 {
                    DType::Q5_K
                } else if !falcon || more {
                    DType::Q4_K
                } else {
                    DType::Q3_K
                }
            }
            Mix::Q3_K_L => new = if falcon { DType::Q4_K } else { DType::Q5_K },
            Mix::Q4_K_M if falcon => {
                new = if i_layer < n_layer / 16 {
                    DType::Q6_K
                } else if more {
                    DType::Q5_K
                } else {
                    DType::Q4_K
                }
            }
            Mix::Q4_K_M | Mix::Q5_K_M if more => new = DType::Q6_K,
            Mix::Q4_K_S if !falcon && i_layer < n_layer / 8 => new = DType::Q5_K,
            // llama.cpp's guard for the first ffn_down layers of an imatrix Q4_0/Q5_0 file.
            Mix::Q4_0 if st.imatrix && i_layer < n_layer / 8 => new = DType::Q4_1,
            Mix::Q5_0 if st.imatrix && i_layer < n_layer / 8 => new = DType::Q5_1,
            _ => {}
        }
        st.i_ffn_down += 1;
    } else if cat == AttnOutput {
        if !falcon {
            if info.n_expert == 8 {
                if matches!(
                    mix,
                    Mix::Q2_K | Mix::Q3_K_S | Mix::Q3_K_M | Mix::Q4_K_S | Mix::Q4_K_M
                ) {
                    new = DType::Q5_K;
                }
            } else {
                match mix {
                    Mix::Q2_K => new = DType::Q3_K,
                    Mix::Q3_K_M => new = DType::Q4_K,
                    Mix::Q3_K_L => new = DType::Q5_K,
                    _ => {}
                }
            }
        } else if mix == Mix::Q3_K_L {
            new = DType::Q4_K;
        }
    }
    // llama.cpp's own ATTENTION_QKV branch is unreachable there (attn_qkv is attn_v-like above).
    new
}

impl Plan {
    /// Decides every tensor's type (inputs in file order; the plan comes out in llama-quantize's
    /// order) and validates the whole plan.
    pub fn build(
        inputs: &[Input],
        info: &ModelInfo,
        mix: Option<Mix>,
        rules: &[Rule],
    ) -> Result<Plan> {
        Self::build_for(inputs, info, mix, rules, false)
    }

    /// [`Plan::build`] for a run with an importance matrix (`imatrix`), whose mixes differ as
    /// llama-quantize's do: Q4_0 and Q5_0 raise the first eighth of the ffn_down layers to Q4_1 and
    /// Q5_1.
    pub fn build_for(
        inputs: &[Input],
        info: &ModelInfo,
        mix: Option<Mix>,
        rules: &[Rule],
        imatrix: bool,
    ) -> Result<Plan> {
        if mix.is_none() && rules.is_empty() {
            bail!("nothing to do: give --type, --rules or both");
        }
        let mut order = inputs.to_vec();
        llama_order(&mut order);
        let mut st = MixState {
            n_attention_wv: order
                .iter()
                .filter(|t| {
                    matches!(
                        category(&t.name),
                        Category::AttnV | Category::AttnQkv | Category::AttnKvB
                    )
                })
                .count() as i64,
            i_attention_wv: 0,
            i_ffn_down: 0,
            tied: !order.iter().any(|t| t.name == "output.weight"),
            imatrix,
        };
        let mut used = vec![false; rules.len()];
        let mut entries = Vec::with_capacity(order.len());
        let mut errors = vec![];
        for t in &order {
            let rule = rules.iter().position(|r| r.pattern.matches(&t.name));
            let method = rule.and_then(|i| rules[i].method);
            let (target, why) = if let Some(i) = rule {
                used[i] = true;
                let r = &rules[i];
                match r.target {
                    Target::Keep => (t.dtype, format!("rule {}", r.origin)),
                    Target::Type(ty) => (ty, format!("rule {}", r.origin)),
                }
            } else if let Some(m) = mix {
                if !allows_quantization(t) {
                    let why = if t.dims.len() < 2 {
                        "kept (1-D)"
                    } else {
                        "kept (not quantized by the mix)"
                    };
                    (t.dtype, why.to_string())
                } else {
                    let chosen = mix_type(m, t, info, &mut st);
                    let (ty, fell) = fallback(t.dims[0], chosen);
                    if fell {
                        (
                            ty,
                            format!(
                                "mix {} ({chosen} does not fit rows of {})",
                                m.name(),
                                t.dims[0]
                            ),
                        )
                    } else {
                        (ty, format!("mix {}", m.name()))
                    }
                }
            } else {
                (t.dtype, "kept (no rule)".to_string())
            };
            let e = Entry {
                name: t.name.clone(),
                dims: t.dims.clone(),
                src: t.dtype,
                target,
                why,
                method,
            };
            if let Err(err) = check_entry(&e) {
                errors.push(format!("{err:#}"));
            }
            entries.push(e);
        }
        for (r, u) in rules.iter().zip(&used) {
            if !u {
                errors.push(format!(
                    "{}: pattern '{}' matches no tensor (or only tensors an earlier rule takes)",
                    r.origin, r.pattern
                ));
            }
        }
        if !errors.is_empty() {
            bail!("the plan is invalid:\n  {}", errors.join("\n  "));
        }
        Ok(Plan { entries, mix })
    }

    /// `general.file_type` for the output: the mix's, else llama's "guessed" convention (1024) is
    /// avoided by keeping the mostly-used quantized type's file type when rules alone decide.
    pub fn file_type(&self) -> Option<u32> {
        self.mix.map(Mix::file_type)
    }
}

fn check_entry(e: &Entry) -> Result<()> {
    if e.is_copy() {
        return Ok(());
    }
    if !can_write(e.target) {
        bail!(
            "tensor '{}': {} asks for {}, which the quant library does not produce",
            e.name,
            e.why,
            e.target
        );
    }
    if !e.src.can_dequantize() {
        bail!(
            "tensor '{}' is {}, which cannot be decoded to requantize it to {}",
            e.name,
            e.src,
            e.target
        );
    }
    if e.dims.len() < 2 && e.target.ggml().is_some() {
        // llama.cpp applies norms and biases element-wise, and its element-wise operations do not
        // read block types: such a file would load and then abort.
        bail!(
            "tensor '{}' ({}) is 1-D (a norm or bias): it cannot take {}, a block type; give it \
             F32, F16 or keep",
            e.name,
            e.why,
            e.target
        );
    }
    let ne0 = e.dims.first().copied().unwrap_or(1);
    let bs = e.target.block_size().unwrap_or(1) as u64;
    if ne0 % bs != 0 {
        bail!(
            "tensor '{}' ({}): rows of {ne0} values cannot take {} (blocks of {bs})",
            e.name,
            e.why,
            e.target
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inp(name: &str, dims: &[u64], dtype: DType) -> Input {
        Input {
            name: name.into(),
            dims: dims.to_vec(),
            dtype,
        }
    }

    /// SmolLM2-135M's tensors (30 blocks, 576 wide, tied embeddings).
    fn smollm(n_layer: usize) -> Vec<Input> {
        let mut v = vec![
            inp("token_embd.weight", &[576, 49152], DType::Q8_0),
            inp("output_norm.weight", &[576], DType::F32),
        ];
        for i in 0..n_layer {
            for (n, d) in [
                ("attn_norm.weight", vec![576]),
                ("ffn_norm.weight", vec![576]),
                ("attn_q.weight", vec![576, 576]),
                ("attn_k.weight", vec![576, 192]),
                ("attn_v.weight", vec![576, 192]),
                ("attn_output.weight", vec![576, 576]),
                ("ffn_gate.weight", vec![576, 1536]),
                ("ffn_up.weight", vec![576, 1536]),
                ("ffn_down.weight", vec![1536, 576]),
            ] {
                let t = if d.len() == 1 {
                    DType::F32
                } else {
                    DType::Q4_1
                };
                v.push(inp(&format!("blk.{i}.{n}"), &d, t));
            }
        }
        v
    }

    fn info() -> ModelInfo {
        ModelInfo {
            arch: "llama".into(),
            n_layer: 30,
            n_expert: 0,
            // SmolLM2-135M: 9 query heads over 3 KV heads.
            n_gqa: 3,
        }
    }

    fn target(p: &Plan, name: &str) -> DType {
        p.entries.iter().find(|e| e.name == name).unwrap().target
    }

    #[test]
    fn globs() {
        let g = Glob::new("blk.{0,1,2[0-9]}.attn_?.weight").unwrap();
        assert!(g.matches("blk.0.attn_q.weight"));
        assert!(g.matches("blk.25.attn_v.weight"));
        assert!(!g.matches("blk.3.attn_q.weight"));
        assert!(!g.matches("blk.1.attn_output.weight"));
        assert!(Glob::new("*").unwrap().matches(""));
        assert!(Glob::new("*.weight").unwrap().matches("a.b.weight"));
        assert!(Glob::new("blk.[!0].x").unwrap().matches("blk.1.x"));
        assert!(Glob::new("{a,b").is_err());
        assert!(Glob::new("[ab").is_err());
    }

    #[test]
    fn mixes_match_llama_quantize_on_smollm2() {
        let t = smollm(30);
        for (mix, body) in [
            (Mix::Q4_0, DType::Q4_0),
            (Mix::Q4_1, DType::Q4_1),
            (Mix::Q5_0, DType::Q5_0),
            (Mix::Q5_1, DType::Q5_1),
            (Mix::Q8_0, DType::Q8_0),
        ] {
            let p = Plan::build(&t, &info(), Some(mix), &[]).unwrap();
            // Tied embedding: Q6_K, which does not fit 576 -> Q8_0.
            assert_eq!(target(&p, "token_embd.weight"), DType::Q8_0, "{mix:?}");
            assert_eq!(target(&p, "blk.0.attn_norm.weight"), DType::F32);
            assert_eq!(target(&p, "blk.7.ffn_down.weight"), body);
            assert_eq!(target(&p, "blk.7.attn_v.weight"), body);
        }
        let p = Plan::build(&t, &info(), Some(Mix::Q4_K_M), &[]).unwrap();
        assert_eq!(target(&p, "token_embd.weight"), DType::Q8_0);
        // use_more_bits(i, 30): i < 3, i >= 26, (i - 3) % 3 == 2.
        for i in 0..30i64 {
            let more = !(3..26).contains(&i) || (i - 3) % 3 == 2;
            let v = target(&p, &format!("blk.{i}.attn_v.weight"));
            let d = target(&p, &format!("blk.{i}.ffn_down.weight"));
            assert_eq!(
                v,
                if more { DType::Q8_0 } else { DType::Q5_0 },
                "attn_v {i}"
            );
            assert_eq!(
                d,
                if more { DType::Q6_K } else { DType::Q4_K },
                "ffn_down {i}"
            );
            assert_eq!(target(&p, &format!("blk.{i}.attn_q.weight")), DType::Q5_0);
        }
        let p = Plan::build(&t, &info(), Some(Mix::Q6_K), &[]).unwrap();
        assert_eq!(target(&p, "blk.0.ffn_down.weight"), DType::Q6_K);
        assert_eq!(target(&p, "blk.0.ffn_up.weight"), DType::Q8_0);
        let p = Plan::build(&t, &info(), Some(Mix::F16), &[]).unwrap();
        assert_eq!(target(&p, "token_embd.weight"), DType::F16);
        assert_eq!(target(&p, "output_norm.weight"), DType::F32);
        // llama-quantize's order: outside blocks first, then by block number.
        assert_eq!(p.entries[0].name, "output_norm.weight");
        assert_eq!(p.entries[2].name, "blk.0.attn_k.weight");
        assert_eq!(p.entries.last().unwrap().name, "blk.29.ffn_up.weight");
    }

    #[test]
    fn k_mixes_match_llama_quantize_on_smollm2() {
        use DType as D;
        let t = smollm(30);
        // use_more_bits(i, 30): i < 3, i >= 26, (i - 3) % 3 == 2.
        let more = |i: i64| !(3..26).contains(&i) || (i - 3) % 3 == 2;
        // (mix, layer) -> llama-quantize's choice for attn_v, attn_output, attn_q, ffn_down before
        // the 576-wide rows fall back (ffn_down rows are 1536 wide and keep their K type).
        type Choice = fn(i64, &dyn Fn(i64) -> bool) -> [DType; 4];
        let cases: [(Mix, Choice); 7] = [
            (Mix::Q2_K, |_, _| [D::Q3_K, D::Q3_K, D::Q2_K, D::Q3_K]),
            (Mix::Q3_K_S, |_, _| [D::Q3_K, D::Q3_K, D::Q3_K, D::Q3_K]),
            (Mix::Q3_K_M, |i, _| {
                let v = if i < 2 { D::Q5_K } else { D::Q4_K };
                let d = if i < 30 / 16 { D::Q5_K } else { D::Q4_K };
                [v, D::Q4_K, D::Q3_K, d]
            }),
            (Mix::Q3_K_L, |_, _| [D::Q5_K, D::Q5_K, D::Q3_K, D::Q5_K]),
            (Mix::Q4_K_S, |i, _| {
                let v = if i < 4 { D::Q5_K } else { D::Q4_K };
                let d = if i < 30 / 8 { D::Q5_K } else { D::Q4_K };
                [v, D::Q4_K, D::Q4_K, d]
            }),
            (Mix::Q5_K_S, |_, _| [D::Q5_K, D::Q5_K, D::Q5_K, D::Q5_K]),
            (Mix::Q5_K_M, |i, more| {
                let k = if more(i) { D::Q6_K } else { D::Q5_K };
                [k, D::Q5_K, D::Q5_K, k]
            }),
        ];
        let fell = |t: DType| match t {
            D::Q2_K | D::Q3_K => D::Q4_0,
            D::Q4_K => D::Q5_0,
            D::Q5_K => D::Q5_1,
            D::Q6_K => D::Q8_0,
            t => t,
        };
        for (mix, choice) in cases {
            let p = Plan::build(&t, &info(), Some(mix), &[]).unwrap();
            assert_eq!(target(&p, "token_embd.weight"), D::Q8_0, "{mix:?}");
            assert_eq!(target(&p, "blk.0.attn_norm.weight"), D::F32, "{mix:?}");
            for i in 0..30i64 {
                let [v, o, q, d] = choice(i, &more);
                let at = |n: &str| target(&p, &format!("blk.{i}.{n}.weight"));
                assert_eq!(at("attn_v"), fell(v), "{mix:?} attn_v {i}");
                assert_eq!(at("attn_output"), fell(o), "{mix:?} attn_output {i}");
                assert_eq!(at("attn_q"), fell(q), "{mix:?} attn_q {i}");
                assert_eq!(at("ffn_up"), fell(mix.default_type()), "{mix:?} ffn_up {i}");
                assert_eq!(at("ffn_down"), d, "{mix:?} ffn_down {i}");
            }
        }
        // Q2_K's attn_v is Q4_K when four or more query heads share a KV head (then Q5_0 here).
        let gqa4 = ModelInfo { n_gqa: 4, ..info() };
        let p = Plan::build(&t, &gqa4, Some(Mix::Q2_K), &[]).unwrap();
        assert_eq!(target(&p, "blk.5.attn_v.weight"), D::Q5_0);
        // A 70B llama (80 layers): Q3_K_M's attn_v is Q5_K where it would be Q3_K or Q4_K.
        let big = ModelInfo {
            n_layer: 80,
            ..info()
        };
        let p = Plan::build(&smollm(80), &big, Some(Mix::Q3_K_M), &[]).unwrap();
        assert_eq!(target(&p, "blk.40.attn_v.weight"), D::Q5_1);
        assert_eq!(Mix::parse("q3_k_m").unwrap(), Mix::Q3_K_M);
        assert_eq!(Mix::Q5_K_M.file_type(), 17);
    }

    #[test]
    fn imatrix_raises_the_first_ffn_down_layers_of_q4_0_and_q5_0() {
        use DType as D;
        let t = smollm(30);
        for (mix, body, raised) in [(Mix::Q4_0, D::Q4_0, D::Q4_1), (Mix::Q5_0, D::Q5_0, D::Q5_1)] {
            let plain = Plan::build(&t, &info(), Some(mix), &[]).unwrap();
            let with = Plan::build_for(&t, &info(), Some(mix), &[], true).unwrap();
            for i in 0..30 {
                let name = format!("blk.{i}.ffn_down.weight");
                assert_eq!(target(&plain, &name), body, "{mix:?} {i}");
                // 30 layers: n_layer / 8 = 3.
                let want = if i < 3 { raised } else { body };
                assert_eq!(target(&with, &name), want, "{mix:?} {i} with an imatrix");
                let q = format!("blk.{i}.attn_q.weight");
                assert_eq!(target(&with, &q), target(&plain, &q));
            }
        }
        // The K mixes do not change.
        let a = Plan::build(&t, &info(), Some(Mix::Q4_K_M), &[]).unwrap();
        let b = Plan::build_for(&t, &info(), Some(Mix::Q4_K_M), &[], true).unwrap();
        for (x, y) in a.entries.iter().zip(&b.entries) {
            assert_eq!(x.target, y.target, "{}", x.name);
        }
    }

    #[test]
    fn untied_output_gets_q6_k_and_embedding_the_body_type() {
        let mut t = smollm(2);
        for x in &mut t {
            x.dims[0] = x.dims[0] / 576 * 512;
        }
        t.push(inp("output.weight", &[512, 49152], DType::F16));
        let i = ModelInfo {
            n_layer: 2,
            ..info()
        };
        let p = Plan::build(&t, &i, Some(Mix::Q4_0), &[]).unwrap();
        assert_eq!(target(&p, "output.weight"), DType::Q6_K);
        assert_eq!(target(&p, "token_embd.weight"), DType::Q4_0);
        let p = Plan::build(&t, &i, Some(Mix::Q8_0), &[]).unwrap();
        assert_eq!(target(&p, "output.weight"), DType::Q8_0);
    }

    #[test]
    fn rules_may_name_a_method() {
        let t = smollm(2);
        let i = ModelInfo {
            n_layer: 2,
            ..info()
        };
        let rules = parse_rules(
            "blk.*.ffn_down.weight = Q4_K gptq\nblk.*.attn_v.weight = \"Q8_0\" RTN\n\
             blk.0.attn_q.weight = Q4_0\n",
            "r",
        )
        .unwrap();
        let p = Plan::build(&t, &i, Some(Mix::Q4_K_M), &rules).unwrap();
        let entry = |n: &str| p.entries.iter().find(|e| e.name == n).unwrap().clone();
        assert_eq!(entry("blk.1.ffn_down.weight").target, DType::Q4_K);
        assert_eq!(entry("blk.1.ffn_down.weight").method, Some(Method::Gptq));
        assert_eq!(entry("blk.0.attn_v.weight").target, DType::Q8_0);
        assert_eq!(entry("blk.0.attn_v.weight").method, Some(Method::Rtn));
        assert_eq!(entry("blk.0.attn_q.weight").method, None);
        assert_eq!(entry("blk.1.attn_q.weight").method, None);
        let err = |text: &str| format!("{:#}", parse_rules(text, "r").unwrap_err());
        assert!(err("x = Q4_0 awq").contains("r:1: unknown method 'awq'"));
        assert!(err("x = keep gptq").contains("gptq needs a GGUF block type"));
        assert!(err("x = F16 gptq").contains("gptq needs a GGUF block type"));
        assert!(err("x = MXFP4 gptq").contains("gptq needs a GGUF block type"));
        assert!(err("x = IQ4_XS gptq").contains("gptq needs a GGUF block type"));
        assert!(err("x = NVFP4 gptq").contains("gptq needs a GGUF block type"));
        assert!(parse_rules("x = IQ4_XS\ny = NVFP4 rtn", "r").is_ok());
        // A rule that would give a norm a block type is refused.
        let rules = parse_rules("blk.*.attn_*.weight = Q4_0", "r").unwrap();
        let e = format!("{:#}", Plan::build(&t, &i, None, &rules).unwrap_err());
        assert!(
            e.contains("'blk.0.attn_norm.weight' (rule r:1) is 1-D"),
            "{e}"
        );
    }

    #[test]
    fn rules_first_match_wins_and_are_validated() {
        let t = smollm(2);
        let i = ModelInfo {
            n_layer: 2,
            ..info()
        };
        let rules = parse_rules(
            "# comment\n*_norm.weight = keep\n\"blk.0.*\" = Q8_0  # trailing\nblk.*.ffn_down.weight = Q4_0\n",
            "r",
        )
        .unwrap();
        let p = Plan::build(&t, &i, Some(Mix::Q4_1), &rules).unwrap();
        assert_eq!(target(&p, "blk.0.ffn_down.weight"), DType::Q8_0);
        assert_eq!(target(&p, "blk.1.ffn_down.weight"), DType::Q4_0);
        assert_eq!(target(&p, "blk.1.ffn_up.weight"), DType::Q4_1);
        assert!(p.entries.iter().any(|e| e.why == "rule r:2"));

        let e = |text: &str| {
            let rules = parse_rules(text, "r");
            match rules {
                Err(e) => format!("{e:#}"),
                Ok(rules) => format!("{:#}", Plan::build(&t, &i, None, &rules).unwrap_err()),
            }
        };
        assert!(e("x = Q9_9").contains("r:1: unknown type 'Q9_9'"));
        assert!(e("x = IQ3_S").contains("cannot be written"));
        assert!(e("nothing.* = Q8_0").contains("'nothing.*' matches no tensor"));
        let s = e("blk.*.attn_q.weight = Q4_K");
        assert!(
            s.contains("'blk.0.attn_q.weight'") && s.contains("rows of 576"),
            "{s}"
        );
        assert!(e("no equals sign").contains("expected PATTERN = TYPE"));
        assert!(e("{a = Q8_0").contains("unclosed"));
    }

    #[test]
    fn seventy_b_llama_gets_q5_k_attn_v() {
        // A 70B Llama (80 blocks): Q4_K_M gives Q5_K to the attn_v that would be Q4_K.
        let mut t = smollm(80);
        for x in &mut t {
            x.dims[0] = 512;
        }
        let i = ModelInfo {
            n_layer: 80,
            ..info()
        };
        let p = Plan::build(&t, &i, Some(Mix::Q4_K_M), &[]).unwrap();
        assert_eq!(target(&p, "blk.10.attn_v.weight"), DType::Q5_K);
        assert_eq!(target(&p, "blk.0.attn_v.weight"), DType::Q6_K);
        assert_eq!(target(&p, "blk.10.attn_q.weight"), DType::Q4_K);
    }
}
