"""llama.cpp's reranking (llama-cpp-python) on the same random Qwen3 weights Mira scored.

    python benches/peers/llama.py D [--threads 2] [--linears q8_0|f32]

D is a `mira-bench model-peers` directory (run with `--skip-clip --dtype q8` for the int8
comparison): D/qwen3-0.6b (or whichever shape D/mira.json names) holds the safetensors, and
D/mira.json Mira's prompts (token ids), P(yes) and rate. This script converts the checkpoint to
GGUF with the linear layers in Q8_0 (GGML's int8 blocks of 32, the format Mira's q8 uses; the
embedding stays f32, as in Mira), written with PyPI's `gguf`, then scores the same token ids
with llama.cpp at the last position (P(yes) = softmax over the "yes" and "no" logits, as the
Qwen3-Reranker model card and Mira do), one prompt at a time after the shared prefix, whose keys
and values stay in llama.cpp's cache (the prefix reuse Mira does too). It prints pairs/s for
both and how far P(yes) agrees. No tokenizer is needed: the prompts are ids. `--linears f32`
(against a Mira run in f32) checks the conversion: the two should then agree to ~1e-4.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
from safetensors.numpy import safe_open

import gguf

# transformers' names -> GGUF's, per layer.
LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(name):
    if name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if name == "model.norm.weight":
        return "output_norm.weight"
    if name == "lm_head.weight":
        return "output.weight"
    parts = name.split(".")
    if parts[:2] == ["model", "layers"]:
        rest = ".".join(parts[3:])
        if rest in LAYER:
            return f"blk.{parts[2]}.{LAYER[rest]}"
    raise SystemExit(f"{name}: no GGUF name for this tensor")


def convert(model_dir, out, q8):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    w = gguf.GGUFWriter(out, "qwen3")
    w.add_context_length(4096)
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_tokenizer_model("none")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if q8 else gguf.LlamaFileType.ALL_F32)
    with safe_open(os.path.join(model_dir, "model.safetensors"), "np") as f:
        for name in f.keys():
            data = f.get_tensor(name).astype(np.float32)
            target = gguf_name(name)
            linear = data.ndim == 2 and target.startswith("blk.")
            if linear and q8:
                q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
                w.add_tensor(target, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            else:
                w.add_tensor(target, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def p_yes(logits, yes, no):
    m = max(logits[yes], logits[no])
    a, b = math.exp(logits[yes] - m), math.exp(logits[no] - m)
    return a / (a + b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--linears", choices=["q8_0", "f32"], default="q8_0")
    args = ap.parse_args()
    mira = json.load(open(os.path.join(args.dir, "mira.json")))
    r = mira["reranker"]
    run = r["runs"][0]
    threads = args.threads or mira.get("threads") or os.cpu_count()
    model_dir = os.path.join(args.dir, r["dir"])
    out = os.path.join(args.dir, f"{r['dir']}-{args.linears}.gguf")
    if not os.path.exists(out):
        print(f"llama.py: converting {model_dir} to {out} ({args.linears} linears)", file=sys.stderr)
        convert(model_dir, out + ".part", args.linears == "q8_0")
        os.rename(out + ".part", out)

    from llama_cpp import Llama
    import llama_cpp

    prompts = run["prompts"]
    prefix_len = run["prefix_tokens"]
    longest = max(len(p) for p in prompts)
    llm = Llama(
        model_path=out,
        n_ctx=max(512, longest + 16),
        n_batch=512,
        n_ubatch=512,
        n_threads=threads,
        n_threads_batch=threads,
        logits_all=False,
        verbose=False,
    )
    yes, no = r["yes_id"], r["no_id"]

    def score(reuse_prefix):
        scores = []
        llm.reset()
        llm._ctx.kv_cache_clear()
        if reuse_prefix:
            llm.eval(prompts[0][:prefix_len])
        for p in prompts:
            keep = prefix_len if reuse_prefix else 0
            llm.n_tokens = keep
            llm._ctx.kv_cache_seq_rm(-1, keep, -1)
            llm.eval(p[keep:])
            # Without logits_all, llama.cpp keeps the last position's logits only (all this
            # needs); llama-cpp-python's `scores` then stays empty, so they are read directly.
            logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
            scores.append(p_yes(logits, yes, no))
        return scores

    score(True)  # warm-up
    rows = []
    for reuse in (False, True):
        started = time.perf_counter()
        scores = score(reuse)
        rate = len(prompts) / (time.perf_counter() - started)
        rows.append((reuse, rate, scores))
    mira_rate = run["pairs_per_s"]
    mira_p = run["p_yes"]
    print(f"Qwen3-Reranker-{r['shape']}-shaped, {len(prompts)} prompts of {run['tokens']} tokens "
          f"({prefix_len}-token shared prefix), {threads} threads; Mira in {mira['dtype']}, "
          f"llama.cpp {llama_cpp.__version__} with {args.linears} linears (f32 embedding):")
    for reuse, rate, scores in rows:
        diff = max(abs(a - b) for a, b in zip(scores, mira_p))
        order = (sorted(range(len(scores)), key=lambda i: -scores[i])
                 == sorted(range(len(mira_p)), key=lambda i: -mira_p[i]))
        how = "prefix kept in its cache" if reuse else "each prompt from scratch"
        print(f"  llama.cpp, one prompt at a time, {how:<26} {rate:6.2f} pairs/s   "
              f"Mira {mira_rate:5.2f} pairs/s (batches of {run['batch']})   {mira_rate / rate:.2f}x   "
              f"max |dP(yes)| {diff:.2e}, {'same' if order else 'a different'} order")


if __name__ == "__main__":
    main()
