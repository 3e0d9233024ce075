//! The model's own tokenizer, built from what a GGUF file carries (`tokenizer.ggml.*`) with the Hugging
//! Face `tokenizers` crate, so that a text becomes the same token ids as llama.cpp makes of it.
//!
//! Only byte-level BPE (`tokenizer.ggml.model` = "gpt2") is built, with the pre-tokenizers whose split
//! rules are known here (`tokenizer.ggml.pre`). Special tokens are not parsed out of the text: like
//! llama.cpp's perplexity tool, text that spells `<|endoftext|>` is tokenized as ordinary text.
use anyhow::{bail, Context, Result};
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;

/// What a GGUF file says about its tokenizer (the `tokenizer.ggml.*` keys).
pub struct TokenizerSpec<'a> {
    /// `tokenizer.ggml.model`: the tokenizer family ("gpt2" is byte-level BPE).
    pub model: &'a str,
    /// `tokenizer.ggml.pre`: the pre-tokenizer's name, which fixes how text is split before BPE.
    pub pre: &'a str,
    /// `tokenizer.ggml.tokens`: the token strings, in byte-level form, indexed by id.
    pub tokens: &'a [String],
    /// `tokenizer.ggml.merges`: "left right" pairs, highest priority first.
    pub merges: &'a [String],
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`: whether an encoded text starts with BOS.
    pub add_bos: bool,
}

/// A text-to-ids tokenizer for one model.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// BOS, when the model wants it in front of every encoded text.
    bos_prefix: Option<u32>,
    /// BOS whether or not it is added: the perplexity loop puts it at the start of each chunk.
    bos: Option<u32>,
    n_vocab: usize,
}

/// GPT-2's split rule; llama.cpp and `tokenizers`' ByteLevel use the same expression.
const GPT2_SPLIT: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

impl Tokenizer {
    pub fn new(spec: &TokenizerSpec) -> Result<Self> {
        if spec.model != "gpt2" {
            bail!(
                "tokenizer.ggml.model '{}' is not supported (only byte-level BPE, 'gpt2')",
                spec.model
            );
        }
        // Each name's split rules, as llama.cpp's vocabulary loader defines them for that name.
        let digits_first = match spec.pre {
            // SmolLM (and StarCoder's family): every digit is a piece of its own, then GPT-2's rule.
            "smollm" | "starcoder" | "refact" | "codeshell" => true,
            "gpt2" | "default" => false,
            other => bail!(
                "tokenizer.ggml.pre '{other}' is not supported (supported: smollm, starcoder, refact, codeshell, gpt2, default)"
            ),
        };
        let mut vocab = tokenizers::models::bpe::Vocab::default();
        for (id, token) in spec.tokens.iter().enumerate() {
            let id = u32::try_from(id).context("more than 2^32 tokens")?;
            // A duplicated string keeps its first id, the one that llama.cpp's lookup finds too.
            vocab.entry(token.clone()).or_insert(id);
        }
        let merges = spec
            .merges
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .with_context(|| {
                        format!("tokenizer.ggml.merges[{i}] '{m}' is not 'left right'")
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| anyhow::anyhow!("building the BPE model: {e}"))?;

        let mut steps = Vec::new();
        if digits_first {
            let digits = Split::new(
                SplitPattern::Regex(r"\p{N}".into()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| anyhow::anyhow!("digit split rule: {e}"))?;
            steps.push(PreTokenizerWrapper::Split(digits));
        }
        // Both regexes are spelled out rather than taken from ByteLevel's default so that the rule is
        // visible here; ByteLevel then only maps bytes to its printable alphabet.
        let words = Split::new(
            SplitPattern::Regex(GPT2_SPLIT.into()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| anyhow::anyhow!("word split rule: {e}"))?;
        steps.push(PreTokenizerWrapper::Split(words));
        steps.push(PreTokenizerWrapper::ByteLevel(ByteLevel::new(
            false, false, false,
        )));

        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(Sequence::new(steps)));
        inner.with_decoder(Some(ByteLevel::default()));
        let bos = spec.bos.filter(|&b| (b as usize) < spec.tokens.len());
        if spec.add_bos && bos.is_none() {
            bail!("tokenizer.ggml.add_bos_token is set but tokenizer.ggml.bos_token_id is missing or out of range");
        }
        Ok(Self {
            inner,
            bos_prefix: if spec.add_bos { bos } else { None },
            bos,
            n_vocab: spec.tokens.len(),
        })
    }

    /// The ids of `text`, with BOS in front when the model asks for it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| anyhow::anyhow!("tokenizing: {e}"))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        ids.extend(self.bos_prefix);
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// The text of `ids` (for messages and checks).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| anyhow::anyhow!("detokenizing: {e}"))
    }

    /// Whether encoded texts start with BOS (llama.cpp's perplexity then puts BOS first in each chunk).
    pub fn adds_bos(&self) -> bool {
        self.bos_prefix.is_some()
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }
}
