"""llm-compressor's GPTQ on the CPU, timed: the Python peer of `quant`'s calibrated quantization in
scripts/peer-job.sh.

    python peer_gptq.py HF_DIR CALIB_TEXT OUT_DIR SAMPLES SEQ_LEN THREADS GROUP

HF_DIR is the model as `quant export-hf --dtype f32` writes it. The calibration samples are cut as
`quant` cuts them (`SAMPLES` consecutive runs of `SEQ_LEN` tokens from the text's start, tokenized by
the folder's tokenizer, BOS first when the tokenizer adds one). The recipe is llm-compressor's
documented GPTQ example, `GPTQModifier(targets="Linear", scheme="W4A16_ASYM", ignore=["lm_head"])`
(4-bit codes with zero points, as `quant export-gptq` writes them; damping 0.01), with groups of GROUP
columns: the preset's 128 does not divide SmolLM2's width of 576, which llm-compressor refuses. `oneshot` runs its sequential pipeline (each decoder
layer calibrated on the outputs of the layers already quantized, as `quant` does). The
quantized model is saved compressed (compressed-tensors pack-quantized) to OUT_DIR.

Prints one line: `load_s oneshot_s save_s`.
"""
import sys
import time

import torch
from datasets import Dataset
from llmcompressor import oneshot
from llmcompressor.modifiers.quantization import GPTQModifier
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    hf, calib, out = sys.argv[1:4]
    samples, seq_len, threads, group = (int(v) for v in sys.argv[4:8])
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(hf)
    ids = tok(open(calib, encoding="utf-8").read(), add_special_tokens=False).input_ids
    if len(ids) < samples * seq_len:
        sys.exit(f"{calib}: {len(ids)} tokens, {samples} x {seq_len} needed")
    bos = tok.bos_token_id if getattr(tok, "add_bos_token", False) else None
    chunks = []
    for i in range(samples):
        c = ids[i * seq_len : (i + 1) * seq_len]
        if bos is not None:
            c[0] = bos
        chunks.append(c)
    ds = Dataset.from_dict({"input_ids": chunks, "attention_mask": [[1] * seq_len] * samples})
    model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32)
    t1 = time.perf_counter()
    weights = {"num_bits": 4, "type": "int", "symmetric": False, "strategy": "group", "group_size": group}
    recipe = GPTQModifier(
        config_groups={"group_0": {"targets": ["Linear"], "weights": weights}}, ignore=["lm_head"]
    )
    oneshot(
        model=model,
        dataset=ds,
        recipe=recipe,
        max_seq_length=seq_len,
        num_calibration_samples=samples,
    )
    t2 = time.perf_counter()
    model.save_pretrained(out, save_compressed=True)
    tok.save_pretrained(out)
    t3 = time.perf_counter()
    print(f"{t1 - t0:.2f} {t2 - t1:.2f} {t3 - t2:.2f}")


if __name__ == "__main__":
    main()
