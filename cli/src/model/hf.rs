//! Hugging Face <-> GGUF for Llama models: tensor names, the q/k row permutation, config.json.
//!
//! GGUF conversion (convert_hf_to_gguf.py, `LlamaModel.permute`) reorders the rows of q_proj and
//! k_proj for ggml's RoPE: within each head of `hd` rows, HF row `i * hd/2 + j` (i in {0, 1})
//! becomes GGUF row `2j + i`. k_proj uses the KV head count.
use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value as Json};

use super::gguf::Value;
use super::ValueType;

/// The GGUF name of an HF Llama tensor, or `None` for a name this tool does not map.
pub fn gguf_name(hf: &str) -> Option<String> {
    match hf {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (n, tail) = rest.split_once('.')?;
    let n: usize = n.parse().ok()?;
    let g = match tail {
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        _ => return None,
    };
    Some(format!("blk.{n}.{g}"))
}

/// The HF name of a GGUF Llama tensor (the inverse of [`gguf_name`]).
pub fn hf_name(gguf: &str) -> Option<String> {
    match gguf {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        "output.weight" => return Some("lm_head.weight".into()),
        _ => {}
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (n, tail) = rest.split_once('.')?;
    let n: usize = n.parse().ok()?;
    let h = match tail {
        "attn_norm.weight" => "input_layernorm.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        _ => return None,
    };
    Some(format!("model.layers.{n}.{h}"))
}

/// The head count whose RoPE permutation a GGUF tensor carries (`None`: not permuted).
pub fn permuted_heads(gguf: &str, n_head: usize, n_head_kv: usize) -> Option<usize> {
    if gguf.ends_with(".attn_q.weight") {
        Some(n_head)
    } else if gguf.ends_with(".attn_k.weight") {
        Some(n_head_kv)
    } else {
        None
    }
}

/// Reorders rows (`row_bytes` each) between HF and GGUF order: `to_gguf` applies
/// convert_hf_to_gguf's permutation, otherwise its inverse.
pub fn permute_rows(src: &[u8], row_bytes: usize, n_head: usize, to_gguf: bool) -> Result<Vec<u8>> {
    let rows = src.len() / row_bytes.max(1);
    if n_head == 0 || rows % n_head != 0 || (rows / n_head) % 2 != 0 {
        bail!("{rows} rows cannot be split into {n_head} heads of an even size");
    }
    let hd = rows / n_head;
    let half = hd / 2;
    let mut out = vec![0u8; src.len()];
    for h in 0..n_head {
        for i in 0..2 {
            for j in 0..half {
                let hf = h * hd + i * half + j;
                let gg = h * hd + 2 * j + i;
                let (from, to) = if to_gguf { (hf, gg) } else { (gg, hf) };
                out[to * row_bytes..(to + 1) * row_bytes]
                    .copy_from_slice(&src[from * row_bytes..(from + 1) * row_bytes]);
            }
        }
    }
    Ok(out)
}

fn get_u64(meta: &[(String, Value)], key: &str) -> Option<u64> {
    meta.iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.as_u64())
}

fn get_f64(meta: &[(String, Value)], key: &str) -> Option<f64> {
    meta.iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.as_f64())
}

/// Llama hyperparameters, as GGUF and config.json both hold them.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub n_layer: u64,
    pub n_embd: u64,
    pub n_ff: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    pub n_ctx: u64,
    pub n_vocab: u64,
    pub rope_theta: f64,
    pub rms_eps: f64,
    pub tied: bool,
    pub bos: Option<u64>,
    pub eos: Option<u64>,
}

impl LlamaConfig {
    pub fn from_gguf(meta: &[(String, Value)], tied: bool) -> Result<LlamaConfig> {
        let need = |k: &str| {
            get_u64(meta, &format!("llama.{k}"))
                .ok_or_else(|| anyhow!("the GGUF metadata lacks llama.{k}"))
        };
        let n_vocab = get_u64(meta, "llama.vocab_size").or_else(|| {
            meta.iter()
                .find(|(k, _)| k == "tokenizer.ggml.tokens")
                .and_then(|(_, v)| v.as_array())
                .map(|a| a.len() as u64)
        });
        Ok(LlamaConfig {
            n_layer: need("block_count")?,
            n_embd: need("embedding_length")?,
            n_ff: need("feed_forward_length")?,
            n_head: need("attention.head_count")?,
            n_head_kv: get_u64(meta, "llama.attention.head_count_kv")
                .map_or_else(|| need("attention.head_count"), Ok)?,
            n_ctx: need("context_length")?,
            n_vocab: n_vocab.ok_or_else(|| anyhow!("the GGUF metadata has no vocabulary size"))?,
            rope_theta: get_f64(meta, "llama.rope.freq_base").unwrap_or(10000.0),
            rms_eps: get_f64(meta, "llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            tied,
            bos: get_u64(meta, "tokenizer.ggml.bos_token_id"),
            eos: get_u64(meta, "tokenizer.ggml.eos_token_id"),
        })
    }

    /// config.json of a `LlamaForCausalLM`.
    pub fn to_json(&self, torch_dtype: &str) -> Json {
        let mut m = json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_act": "silu",
            "hidden_size": self.n_embd,
            "intermediate_size": self.n_ff,
            "num_hidden_layers": self.n_layer,
            "num_attention_heads": self.n_head,
            "num_key_value_heads": self.n_head_kv,
            "head_dim": self.n_embd / self.n_head.max(1),
            "max_position_embeddings": self.n_ctx,
            "vocab_size": self.n_vocab,
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_eps,
            "tie_word_embeddings": self.tied,
            "attention_bias": false,
            "mlp_bias": false,
            "torch_dtype": torch_dtype,
        });
        if let Some(b) = self.bos {
            m["bos_token_id"] = json!(b);
        }
        if let Some(e) = self.eos {
            m["eos_token_id"] = json!(e);
        }
        m
    }

    pub fn from_json(c: &Json) -> Result<LlamaConfig> {
        let u = |k: &str| {
            c.get(k)
                .and_then(Json::as_u64)
                .ok_or_else(|| anyhow!("config.json lacks the integer '{k}'"))
        };
        let arch = c.get("model_type").and_then(Json::as_str).unwrap_or("");
        if arch != "llama" {
            bail!("config.json: model_type '{arch}' is not supported (llama is)");
        }
        let n_head = u("num_attention_heads")?;
        Ok(LlamaConfig {
            n_layer: u("num_hidden_layers")?,
            n_embd: u("hidden_size")?,
            n_ff: u("intermediate_size")?,
            n_head,
            n_head_kv: c
                .get("num_key_value_heads")
                .and_then(Json::as_u64)
                .unwrap_or(n_head),
            n_ctx: u("max_position_embeddings")?,
            n_vocab: u("vocab_size")?,
            rope_theta: c
                .get("rope_theta")
                .and_then(Json::as_f64)
                .unwrap_or(10000.0),
            rms_eps: c.get("rms_norm_eps").and_then(Json::as_f64).unwrap_or(1e-5),
            tied: c
                .get("tie_word_embeddings")
                .and_then(Json::as_bool)
                .unwrap_or(false),
            bos: c.get("bos_token_id").and_then(Json::as_u64),
            eos: c.get("eos_token_id").and_then(Json::as_u64),
        })
    }

    /// The `llama.*` GGUF keys, in convert_hf_to_gguf's order.
    pub fn gguf_metadata(&self, name: &str) -> Vec<(String, Value)> {
        let s = |k: &str, v: Value| (k.to_string(), v);
        vec![
            s("general.architecture", Value::string("llama")),
            s("general.type", Value::string("model")),
            s("general.name", Value::string(name)),
            s("llama.block_count", Value::U32(self.n_layer as u32)),
            s("llama.context_length", Value::U32(self.n_ctx as u32)),
            s("llama.embedding_length", Value::U32(self.n_embd as u32)),
            s("llama.feed_forward_length", Value::U32(self.n_ff as u32)),
            s("llama.attention.head_count", Value::U32(self.n_head as u32)),
            s(
                "llama.attention.head_count_kv",
                Value::U32(self.n_head_kv as u32),
            ),
            s("llama.rope.freq_base", Value::F32(self.rope_theta as f32)),
            s(
                "llama.attention.layer_norm_rms_epsilon",
                Value::F32(self.rms_eps as f32),
            ),
            s("llama.vocab_size", Value::U32(self.n_vocab as u32)),
            s(
                "llama.rope.dimension_count",
                Value::U32((self.n_embd / self.n_head.max(1)) as u32),
            ),
        ]
    }
}

/// tokenizer.json and tokenizer_config.json for a GGUF `gpt2` (byte-level BPE) tokenizer, or
/// `None` for another tokenizer model.
pub fn tokenizer_files(meta: &[(String, Value)]) -> Option<(Json, Json)> {
    let get = |k: &str| meta.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    if get("tokenizer.ggml.model")?.as_str()? != "gpt2" {
        return None;
    }
    let tokens: Vec<&str> = get("tokenizer.ggml.tokens")?
        .as_array()?
        .iter()
        .map(|v| v.as_str())
        .collect::<Option<_>>()?;
    let types: Vec<i64> = get("tokenizer.ggml.token_type")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| v.as_i64().unwrap_or(1)).collect())
        .unwrap_or_else(|| vec![1; tokens.len()]);
    let merges: Vec<&str> = get("tokenizer.ggml.merges")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut vocab = Map::new();
    let mut added = vec![];
    for (i, t) in tokens.iter().enumerate() {
        vocab.insert(t.to_string(), json!(i));
        // Control (3) and user-defined (4) tokens are HF's added tokens.
        let ty = types.get(i).copied().unwrap_or(1);
        if ty == 3 || ty == 4 {
            added.push(
                json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": ty == 3}),
            );
        }
    }
    let tok = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges}
    });
    let id = |k: &str| {
        get(k)
            .and_then(Value::as_u64)
            .and_then(|i| tokens.get(i as usize).copied())
    };
    let mut cfg = json!({"tokenizer_class": "GPT2Tokenizer", "model_max_length": 8192,
        "clean_up_tokenization_spaces": false});
    for (key, g) in [
        ("bos_token", "tokenizer.ggml.bos_token_id"),
        ("eos_token", "tokenizer.ggml.eos_token_id"),
        ("unk_token", "tokenizer.ggml.unknown_token_id"),
        ("pad_token", "tokenizer.ggml.padding_token_id"),
    ] {
        if let Some(t) = id(g) {
            cfg[key] = json!(t);
        }
    }
    if let Some(b) = get("tokenizer.ggml.add_bos_token").and_then(Value::as_bool) {
        cfg["add_bos_token"] = json!(b);
    }
    if let Some(t) = get("tokenizer.chat_template").and_then(Value::as_str) {
        cfg["chat_template"] = json!(t);
    }
    Some((tok, cfg))
}

/// GGUF tokenizer keys from tokenizer.json (byte-level BPE) and tokenizer_config.json. The
/// pre-tokenizer name llama.cpp would pick by hashing the tokenizer's output is not derived here:
/// `tokenizer.ggml.pre` is "default".
pub fn tokenizer_metadata(tok: &Json, cfg: Option<&Json>) -> Result<Vec<(String, Value)>> {
    let model = tok
        .get("model")
        .ok_or_else(|| anyhow!("tokenizer.json has no model"))?;
    if model.get("type").and_then(Json::as_str) != Some("BPE") {
        bail!("tokenizer.json: only BPE tokenizers are converted");
    }
    let vocab = model
        .get("vocab")
        .and_then(Json::as_object)
        .ok_or_else(|| anyhow!("tokenizer.json: model.vocab is not an object"))?;
    let mut tokens: Vec<Option<String>> = vec![];
    let mut put = |id: usize, t: &str| {
        if tokens.len() <= id {
            tokens.resize(id + 1, None);
        }
        tokens[id] = Some(t.to_string());
    };
    for (t, id) in vocab {
        put(
            id.as_u64()
                .ok_or_else(|| anyhow!("tokenizer.json: id of '{t}'"))? as usize,
            t,
        );
    }
    let mut types = vec![];
    let added = tok
        .get("added_tokens")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    for a in &added {
        let (Some(id), Some(t)) = (
            a.get("id").and_then(Json::as_u64),
            a.get("content").and_then(Json::as_str),
        ) else {
            continue;
        };
        put(id as usize, t);
        types.push((
            id as usize,
            if a.get("special").and_then(Json::as_bool) == Some(true) {
                3
            } else {
                4
            },
        ));
    }
    let n = tokens.len();
    let mut tt = vec![1i32; n];
    for (id, ty) in types {
        tt[id] = ty;
    }
    let tokens: Vec<Value> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| Value::String(t.unwrap_or_else(|| format!("[PAD{i}]")).into_bytes()))
        .collect();
    let merges: Vec<Value> = model
        .get("merges")
        .and_then(Json::as_array)
        .map(|m| {
            m.iter()
                .filter_map(|x| match x {
                    Json::String(s) => Some(Value::string(s)),
                    Json::Array(p) if p.len() == 2 => Some(Value::string(&format!(
                        "{} {}",
                        p[0].as_str().unwrap_or(""),
                        p[1].as_str().unwrap_or("")
                    ))),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let token_id = |name: &str| -> Option<u64> {
        let t = cfg?.get(name)?;
        let s = t.as_str().or_else(|| t.get("content")?.as_str())?;
        vocab.get(s).and_then(Json::as_u64).or_else(|| {
            added
                .iter()
                .find(|a| a.get("content").and_then(Json::as_str) == Some(s))?
                .get("id")?
                .as_u64()
        })
    };
    let s = |k: &str, v: Value| (k.to_string(), v);
    let mut m = vec![
        s("tokenizer.ggml.model", Value::string("gpt2")),
        s("tokenizer.ggml.pre", Value::string("default")),
        s(
            "tokenizer.ggml.tokens",
            Value::Array(ValueType::String, tokens),
        ),
        s(
            "tokenizer.ggml.token_type",
            Value::Array(ValueType::I32, tt.into_iter().map(Value::I32).collect()),
        ),
        s(
            "tokenizer.ggml.merges",
            Value::Array(ValueType::String, merges),
        ),
    ];
    for (k, g) in [
        ("bos_token", "tokenizer.ggml.bos_token_id"),
        ("eos_token", "tokenizer.ggml.eos_token_id"),
        ("unk_token", "tokenizer.ggml.unknown_token_id"),
        ("pad_token", "tokenizer.ggml.padding_token_id"),
    ] {
        if let Some(id) = token_id(k) {
            m.push(s(g, Value::U32(id as u32)));
        }
    }
    if let Some(b) = cfg
        .and_then(|c| c.get("add_bos_token"))
        .and_then(Json::as_bool)
    {
        m.push(s("tokenizer.ggml.add_bos_token", Value::Bool(b)));
    }
    if let Some(t) = cfg
        .and_then(|c| c.get("chat_template"))
        .and_then(Json::as_str)
    {
        m.push(s("tokenizer.chat_template", Value::string(t)));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for g in [
            "token_embd.weight",
            "output.weight",
            "output_norm.weight",
            "blk.12.attn_k.weight",
            "blk.0.ffn_down.weight",
        ] {
            assert_eq!(gguf_name(&hf_name(g).unwrap()).as_deref(), Some(g));
        }
        assert_eq!(
            hf_name("blk.3.attn_q.weight").unwrap(),
            "model.layers.3.self_attn.q_proj.weight"
        );
        assert_eq!(gguf_name("model.layers.x.mlp.up_proj.weight"), None);
    }

    #[test]
    fn permutation_matches_convert_hf_to_gguf() {
        // 2 heads of 4 rows, 1 byte per row: HF rows [0 1 2 3 | 4 5 6 7] -> GGUF [0 2 1 3 | 4 6 5 7].
        let hf: Vec<u8> = (0..8).collect();
        let g = permute_rows(&hf, 1, 2, true).unwrap();
        assert_eq!(g, [0, 2, 1, 3, 4, 6, 5, 7]);
        assert_eq!(permute_rows(&g, 1, 2, false).unwrap(), hf);
        let big: Vec<u8> = (0..=255).collect();
        assert_eq!(
            permute_rows(&permute_rows(&big, 4, 8, false).unwrap(), 4, 8, true).unwrap(),
            big
        );
        assert!(permute_rows(&hf, 1, 3, true).is_err());
    }
}
