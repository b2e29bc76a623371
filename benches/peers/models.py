"""PyTorch + transformers on the models and inputs `mira-bench model-peers` wrote, in the same run.

    python benches/peers/models.py DIR [--check] [--torch-dtype bf16]

Reads DIR/mira.json (Mira's outputs and rates), runs transformers on the same files the same way
a user would (CLIPModel + CLIPImageProcessor from the image files; Qwen3ForCausalLM on the same
token ids, P("yes") from the last position's "yes"/"no" logits; BlipForConditionalGeneration's
greedy generate), writes DIR/torch.json and prints
one table: each rate, its ratio Mira/PyTorch, and how far the outputs agree. With --check, exits 1
when they do not agree within the bounds (CLIP cosine >= 0.9999 in f32; P(yes) within 1e-4 in f32,
1e-2 in bf16; the same order of the prompts; in f32 the same caption token ids).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image


def device_of(name):
    return torch.device("cuda:" + name.split(":", 1)[1] if ":" in name else name)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def torch_dtype(name):
    return {"f32": torch.float32, "q8": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[name]


def clip_side(root, m, dev, dtype):
    from transformers import CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    d = os.path.join(root, m["dir"])
    model = CLIPModel.from_pretrained(d, dtype=dtype).to(dev).eval()
    processor = CLIPImageProcessor.from_pretrained(d)
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"))
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    pad = tok.convert_tokens_to_ids("[UNK]")
    paths = [os.path.join(root, p) for p in m["images"]]
    texts = m["texts"]
    b = m["batch"]

    def images(chunk):
        pixels = processor(images=[Image.open(p).convert("RGB") for p in chunk], return_tensors="pt")
        with torch.inference_mode():
            f = model.get_image_features(pixel_values=pixels["pixel_values"].to(dev, dtype))
            f = getattr(f, "pooler_output", f)
            return torch.nn.functional.normalize(f.float(), dim=-1).cpu()

    def text(chunk):
        ids = [tok(t)["input_ids"] for t in chunk]
        n = max(len(i) for i in ids)
        x = torch.tensor([i + [pad] * (n - len(i)) for i in ids], device=dev)
        # Each text is read at its own end token (the config's eos id 2 would make transformers
        # take the arg-max id instead); the causal mask keeps padding out of it, as in Mira.
        at = torch.tensor([i.index(eos) for i in ids], device=dev)
        with torch.inference_mode():
            hidden = model.text_model(input_ids=x).last_hidden_state
            f = model.text_projection(hidden[torch.arange(len(ids), device=dev), at])
            return torch.nn.functional.normalize(f.float(), dim=-1).cpu()

    images(paths[:b]), text(texts[:b])  # warm-up
    sync(dev)
    t = time.perf_counter()
    img = torch.cat([images(paths[i : i + b]) for i in range(0, len(paths), b)])
    sync(dev)
    image_s = time.perf_counter() - t
    t = time.perf_counter()
    txt = torch.cat([text(texts[i : i + b]) for i in range(0, len(texts), b)])
    sync(dev)
    text_s = time.perf_counter() - t
    cos_img = (img * torch.tensor(m["image_embeddings"])).sum(-1)
    cos_txt = (txt * torch.tensor(m["text_embeddings"])).sum(-1)
    return {
        "images_per_s": len(paths) / image_s,
        "texts_per_s": len(texts) / text_s,
        "min_cosine_images": float(cos_img.min()),
        "min_cosine_texts": float(cos_txt.min()),
    }


def reranker_side(root, m, dev, dtype):
    from transformers import AutoModelForCausalLM

    d = os.path.join(root, m["dir"])
    model = AutoModelForCausalLM.from_pretrained(d, dtype=dtype).to(dev).eval()
    yes, no = m["yes_id"], m["no_id"]
    out = []
    for run in m["runs"]:
        prompts, b = run["prompts"], run["batch"]

        def score(chunk):
            n = max(len(p) for p in chunk)
            # Left padding, as Qwen3-Reranker's model card does, so the last position is the answer.
            x = torch.tensor([[0] * (n - len(p)) + p for p in chunk], device=dev)
            mask = torch.tensor([[0] * (n - len(p)) + [1] * len(p) for p in chunk], device=dev)
            with torch.inference_mode():
                logits = model(input_ids=x, attention_mask=mask, logits_to_keep=1).logits[:, -1, :]
                pair = torch.stack([logits[:, no], logits[:, yes]], dim=1).float()
                return torch.softmax(pair, dim=1)[:, 1].cpu()

        score(prompts[:b])  # warm-up
        sync(dev)
        t = time.perf_counter()
        p = torch.cat([score(prompts[i : i + b]) for i in range(0, len(prompts), b)])
        sync(dev)
        seconds = time.perf_counter() - t
        mira = torch.tensor(run["p_yes"])
        same_order = bool(
            (torch.argsort(p, descending=True, stable=True) == torch.argsort(mira, descending=True, stable=True)).all()
        )
        out.append(
            {
                "tokens": run["tokens"],
                "pairs_per_s": len(prompts) / seconds,
                "max_p_yes_difference": float((p - mira).abs().max()),
                "same_order": same_order,
                "p_yes_spread": [float(p.min()), float(p.max())],
            }
        )
    return out


def blip_side(root, m, dev, dtype):
    from transformers import BlipForConditionalGeneration, BlipImageProcessor

    d = os.path.join(root, m["dir"])
    model = BlipForConditionalGeneration.from_pretrained(d, dtype=dtype).to(dev).eval()
    processor = BlipImageProcessor.from_pretrained(d)
    paths = [os.path.join(root, p) for p in m["images"]]
    bos, sep = m["bos_id"], m["sep_id"]

    def caption(chunk):
        px = processor(images=[Image.open(p).convert("RGB") for p in chunk], return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            out = model.generate(
                pixel_values=px.to(dev, dtype), max_new_tokens=m["max_tokens"], num_beams=1, do_sample=False
            )
        rows = []
        for row in out.tolist():
            row = row[1:] if row and row[0] == bos else row
            rows.append(row[: row.index(sep)] if sep in row else row)
        return rows

    caption(paths[:1])  # warm-up
    sync(dev)
    t = time.perf_counter()
    ids = [r for i in range(0, len(paths), 16) for r in caption(paths[i : i + 16])]
    sync(dev)
    seconds = time.perf_counter() - t
    same = sum(a == b for a, b in zip(ids, m["ids"]))
    return {"captions_per_s": len(paths) / seconds, "same_captions": same, "captions": len(paths)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--torch-dtype", choices=["f32", "bf16", "f16"], help="PyTorch's dtype (default: Mira's; f32 for q8)")
    args = ap.parse_args()
    mira = json.load(open(os.path.join(args.dir, "mira.json")))
    dev = device_of(mira["device"])
    dtype = torch_dtype(args.torch_dtype or mira["dtype"])
    torch.manual_seed(0)
    info = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    if dev.type == "cuda":
        info += ", " + torch.cuda.get_device_name(dev)
    print(f"models on {mira['device']}, Mira in {mira['dtype']}, PyTorch in {args.torch_dtype or mira['dtype']} (Mira {mira['threads']} threads; {info})")
    result = {"device": mira["device"], "dtype": mira["dtype"]}
    failures = []
    cos_bound = 0.9999 if mira["dtype"] in ("f32", "q8") else 0.999
    p_bound = {"f32": 1e-4, "bf16": 1e-2, "f16": 1e-2, "q8": 2e-2}[mira["dtype"]]
    if mira.get("clip"):
        c = clip_side(args.dir, mira["clip"], dev, torch.float32 if mira["dtype"] == "q8" else dtype)
        result["clip"] = c
        m = mira["clip"]
        print(f"  CLIP ViT-B/32, batches of {m['batch']}, end to end from files:")
        print(f"    images  Mira {m['images_per_s']:8.1f}/s   PyTorch {c['images_per_s']:8.1f}/s   {m['images_per_s'] / c['images_per_s']:.2f}x   min cosine {c['min_cosine_images']:.6f}")
        print(f"    texts   Mira {m['texts_per_s']:8.1f}/s   PyTorch {c['texts_per_s']:8.1f}/s   {m['texts_per_s'] / c['texts_per_s']:.2f}x   min cosine {c['min_cosine_texts']:.6f}")
        for k in ("min_cosine_images", "min_cosine_texts"):
            if c[k] < cos_bound:
                failures.append(f"CLIP {k} {c[k]:.6f} < {cos_bound}")
    if mira.get("reranker"):
        r = reranker_side(args.dir, mira["reranker"], dev, dtype)
        result["reranker"] = r
        m = mira["reranker"]
        print(f"  Qwen3-Reranker-{m['shape']}-shaped, batches of {m['runs'][0]['batch']} (PyTorch: left-padded batches, last-position logits only):")
        for mr, tr in zip(m["runs"], r):
            ratio = mr["pairs_per_s"] / tr["pairs_per_s"]
            order = "same order" if tr["same_order"] else "DIFFERENT ORDER"
            print(
                f"    {mr['tokens']:5d} tokens  Mira {mr['pairs_per_s']:8.2f} pairs/s ({mr['seconds']:.2f} s for {len(mr['prompts'])})"
                f"   PyTorch {tr['pairs_per_s']:8.2f} pairs/s   {ratio:.2f}x   max |dP(yes)| {tr['max_p_yes_difference']:.2e}, {order}"
            )
            if tr["max_p_yes_difference"] > p_bound:
                failures.append(f"reranker {mr['tokens']} tokens: P(yes) differs by {tr['max_p_yes_difference']:.2e} > {p_bound}")
            if not tr["same_order"] and mira["dtype"] != "q8":
                failures.append(f"reranker {mr['tokens']} tokens: a different order")
    if mira.get("blip"):
        b = blip_side(args.dir, mira["blip"], dev, torch.float32 if mira["dtype"] == "q8" else dtype)
        result["blip"] = b
        m = mira["blip"]
        ratio = m["captions_per_s"] / b["captions_per_s"]
        print(f"  BLIP base, greedy captions of up to {m['max_tokens']} tokens, batches of 16, from files:")
        print(
            f"    Mira {m['captions_per_s']:8.2f}/s   PyTorch {b['captions_per_s']:8.2f}/s   {ratio:.2f}x"
            f"   identical token ids: {b['same_captions']} of {b['captions']}"
        )
        if mira["dtype"] in ("f32", "q8") and b["same_captions"] != b["captions"]:
            failures.append(f"BLIP: {b['captions'] - b['same_captions']} captions differ from transformers'")
    json.dump(result, open(os.path.join(args.dir, "torch.json"), "w"))
    for f in failures:
        print("  MISMATCH: " + f)
    if args.check and failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
