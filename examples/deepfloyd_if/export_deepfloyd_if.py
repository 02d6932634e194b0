#!/usr/bin/env python3
"""Export DeepFloyd IF for scoreflow's C++ adapters (include/scoreflow/torch/torchscript_denoiser.hpp).

Not run in CI: it needs the IF weights. Requirements: torch, diffusers, transformers, sentencepiece,
accelerate, safetensors; accept the licence on https://huggingface.co/DeepFloyd/IF-I-XL-v1.0 (and
IF-II-L-v1.0) and log in with `huggingface-cli login`.

    python export_deepfloyd_if.py --out if_export                       # CUDA, float16
    python export_deepfloyd_if.py --out if_export --device cpu --dtype float32

writes

    if_export/if_stage1.pt   TorchScript, stage I (64×64):
        forward(x [B,3,64,64] float, t [B] int64, prompt_embeds [B,77,4096] float) -> [B,6,64,64]
    if_export/if_stage2.pt   TorchScript, stage II (64 -> 256 super-resolution):
        forward(x [B,6,256,256] float, t [B] int64, prompt_embeds [B,77,4096] float,
                class_labels [B] int64) -> [B,6,256,256]
    if_export/prompts.sfemb  T5 prompt embeddings by name, with "" (the empty prompt, for CFG)

and then, from the build tree:

    deepfloyd_if --stage1 if_export/if_stage1.pt --stage2 if_export/if_stage2.pt \
                 --embeddings if_export/prompts.sfemb --out out

Conventions the C++ side relies on:
  * t is a tensor of one timestep per sample, int64 (not a Python int or a 0-d tensor), so that
    the traced graph works for every batch size.
  * Output channels 0-2 are the noise estimate, 3-5 the learned-range variance value in [-1, 1]
    (UNet2DConditionModel's raw output; the pipeline's split is done in C++).
  * Stage II's x is x_t concatenated on channels with the stage-I image upsampled bilinearly
    (align_corners=True) and noised to noise_level by the pipeline's image_noising_scheduler;
    class_labels is noise_level per sample (IFSuperResolutionPipeline, step 7 and the loop).
  * Each archive carries "scoreflow.txt" (key=value lines) among its extra files: stage, device,
    dtype, embedding width, number of training timesteps and, for stage II, the image-noising
    alphas_cumprod table. The C++ adapters read it and refuse a device or dtype the trace cannot
    run on.

Tracing records the device and dtype of the example inputs as constants in the graph (e.g. the
timestep embedding's arange and its cast to the sample dtype), so export on the device type and in
the dtype you will run with: --device cuda --dtype float16 for a GPU (IF-I-XL: ~9 GB of weights),
--device cpu --dtype float32 for the CPU (~18 GB of RAM for IF-I-XL; IF-I-M or IF-I-L are smaller).

LibTorch versions: a TorchScript archive loads in a LibTorch at least as new as the PyTorch that
wrote it, provided it uses no operator the older one lacks. By default this script switches the
UNets to diffusers' classic AttnAddedKVProcessor, so the graph contains no
scaled_dot_product_attention (absent from LibTorch 1.13); pass --sdpa to keep PyTorch 2's fused
attention when your LibTorch is 2.x. For LibTorch 1.13, export with PyTorch 1.13 (and a diffusers
release that supports it).

The prompt-embeddings file layout (little-endian) is documented in
include/scoreflow/torch/prompt_embeddings.hpp: magic "SFPROMPT", uint32 version 1, uint32 count, then
per prompt: uint32 name length, UTF-8 name, uint32 rank (3), int64 dims [1, 77, D], float32 values.
"""

import argparse
import array
import gc
import os
import struct
import sys

import torch

# The seed's prompts (Part A §0-§1.9) and a few more; "" is the unconditional prompt of CFG.
DEFAULT_PROMPTS = [
    "an oil painting of a snowy mountain village",
    "a man wearing a hat",
    "a rocket ship",
    "an oil painting of an old man",
    "an oil painting of people around a campfire",
    "a photo of a hipster barista",
    "a photo of a dog",
    "a lithograph of a skull",
    "a lithograph of waterfalls",
    "a lithograph of a campfire",
    "a high quality photo",
    "a photo of the amalfi coast",
    "a photo of a man",
    "a pencil",
    "a rocket ship flying over a city",
    "an android dreaming of electric sheep",
    "Dr.Jones holding the holy grail",
    "a mobius strip",
]

# What scoreflow's if_stage1_schedule / if_stage2_schedule assume (diffusers' IF scheduler configs).
EXPECTED_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "epsilon",
    "variance_type": "learned_range",
    "thresholding": True,
    "dynamic_thresholding_ratio": 0.95,
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--stage1-model", default="DeepFloyd/IF-I-XL-v1.0")
    p.add_argument("--stage2-model", default="DeepFloyd/IF-II-L-v1.0")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--dtype", default=None, choices=["float16", "float32"],
                   help="default: float16 on cuda, float32 on cpu")
    p.add_argument("--prompts-file", help="extra prompts, one per line (added to the defaults)")
    p.add_argument("--no-default-prompts", action="store_true")
    p.add_argument("--skip-stage1", action="store_true")
    p.add_argument("--skip-stage2", action="store_true")
    p.add_argument("--skip-embeddings", action="store_true")
    p.add_argument("--sdpa", action="store_true",
                   help="keep PyTorch 2's scaled_dot_product_attention (needs LibTorch 2.x to load)")
    args = p.parse_args()
    if args.dtype is None:
        args.dtype = "float16" if args.device == "cuda" else "float32"
    if args.device == "cpu" and args.dtype == "float16":
        p.error("float16 needs --device cuda")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False")
    return args


def free_memory():
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---- prompt embeddings ---------------------------------------------------------------------

def write_sfemb(path, entries):
    """entries: list of (name, shape (1, 77, D), flat list of floats); written atomically."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"SFPROMPT")
        f.write(struct.pack("<II", 1, len(entries)))
        for name, shape, values in entries:
            raw = name.encode("utf-8")
            f.write(struct.pack("<I", len(raw)))
            f.write(raw)
            f.write(struct.pack("<I", len(shape)))
            f.write(struct.pack(f"<{len(shape)}q", *shape))
            floats = array.array("f", values)  # IEEE float32
            if floats.itemsize != 4:
                raise RuntimeError("this platform's C float is not 4 bytes")
            if sys.byteorder == "big":
                floats.byteswap()
            f.write(floats.tobytes())
    os.replace(tmp, path)


def write_prompt_embeddings(path, embeddings):
    """embeddings: list of (name, tensor [1, 77, D]); the format of prompt_embeddings.hpp."""
    entries = []
    for name, e in embeddings:
        e = e.detach().to("cpu", torch.float32).contiguous()
        if e.dim() != 3 or e.shape[0] != 1 or e.shape[1] != 77:
            raise ValueError(f"prompt {name!r}: embedding shape {tuple(e.shape)}, expected [1, 77, D]")
        if not torch.isfinite(e).all():
            raise ValueError(f"prompt {name!r}: embedding has NaN or inf (T5 in float16 overflowed?)")
        entries.append((name, tuple(e.shape), e.flatten().tolist()))
    write_sfemb(path, entries)


def export_embeddings(args, prompts, dtype):
    from diffusers import IFPipeline
    from transformers import T5EncoderModel

    variant = "fp16" if dtype == torch.float16 else None
    text_encoder = T5EncoderModel.from_pretrained(
        args.stage1_model, subfolder="text_encoder", variant=variant, torch_dtype=dtype)
    pipe = IFPipeline.from_pretrained(
        args.stage1_model, text_encoder=text_encoder, unet=None, safety_checker=None,
        feature_extractor=None, watermarker=None, requires_safety_checker=False,
        variant=variant, torch_dtype=dtype)
    pipe.to(args.device)
    named = [p for p in prompts if p != ""]
    out = []
    with torch.no_grad():
        null = None
        for name in named:
            # encode_prompt returns (prompt_embeds, negative_prompt_embeds): [1, 77, 4096] each; the
            # negative one is the empty prompt's, exactly as IFPipeline uses it for CFG.
            embeds, negative = pipe.encode_prompt(name, do_classifier_free_guidance=True, device=args.device)
            out.append((name, embeds[:1].float().cpu()))
            null = negative[:1].float().cpu() if null is None else null
        if null is None:
            _, negative = pipe.encode_prompt("x", do_classifier_free_guidance=True, device=args.device)
            null = negative[:1].float().cpu()
    out.append(("", null))
    del pipe, text_encoder
    free_memory()
    path = os.path.join(args.out, "prompts.sfemb")
    write_prompt_embeddings(path, out)
    print(f"wrote {path}: {len(out)} prompts (with ''), width {out[0][1].shape[-1]}")
    return out


# ---- UNets ---------------------------------------------------------------------------------

class Stage1(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, prompt_embeds):
        return self.unet(x, t, encoder_hidden_states=prompt_embeds, return_dict=False)[0]


class Stage2(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, prompt_embeds, class_labels):
        return self.unet(x, t, encoder_hidden_states=prompt_embeds, class_labels=class_labels,
                         return_dict=False)[0]


def check_scheduler(model_id, subfolder, sample_max_value):
    from diffusers import DDPMScheduler

    s = DDPMScheduler.from_pretrained(model_id, subfolder=subfolder)
    expected = dict(EXPECTED_SCHEDULER, sample_max_value=sample_max_value)
    for key, want in expected.items():
        got = s.config.get(key)
        if got != want:
            print(f"WARNING: {model_id}/{subfolder}: {key} = {got!r}, but scoreflow's IF schedule assumes {want!r};"
                  f" adjust if_stage*_schedule in torchscript_denoiser.hpp", file=sys.stderr)
    spacing = s.config.get("timestep_spacing", "leading")
    if spacing not in (None, "leading"):
        print(f"WARNING: {model_id}/{subfolder}: timestep_spacing = {spacing!r}; use DiffusionGrid::spaced(n, 1000,"
              f" Spacing::{spacing}) in C++", file=sys.stderr)
    return s


def load_unet(model_id, dtype, device, sdpa):
    from diffusers import UNet2DConditionModel

    variant = "fp16" if dtype == torch.float16 else None
    unet = UNet2DConditionModel.from_pretrained(model_id, subfolder="unet", variant=variant, torch_dtype=dtype)
    if not sdpa:
        from diffusers.models.attention_processor import AttnAddedKVProcessor
        unet.set_attn_processor(AttnAddedKVProcessor())
    return unet.to(device).eval()


def trace_and_save(wrapper, make_inputs, path, meta, dtype):
    """Traces at batch 2 (one CFG pair), checks the trace against eager at batch 4, saves."""
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, make_inputs(2), check_trace=False)
        inputs = make_inputs(4)
        eager = wrapper(*inputs).float()
        got = traced(*inputs).float()
    if tuple(got.shape) != tuple(eager.shape) or got.shape[1] != 6:
        sys.exit(f"{path}: traced output shape {tuple(got.shape)} differs from eager {tuple(eager.shape)}")
    err = ((got - eager).abs().max() / eager.abs().max().clamp_min(1e-6)).item()
    tol = 2e-2 if dtype == torch.float16 else 1e-4
    print(f"  trace vs eager at batch 4: relative max error {err:.2e} (tolerance {tol:.0e})")
    if not err <= tol:
        sys.exit(f"{path}: the trace does not generalise to batch 4 (error {err:.2e}); not saved")
    text = "".join(f"{k}={v}\n" for k, v in meta.items())
    torch.jit.save(traced, path + ".tmp", _extra_files={"scoreflow.txt": text})
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")


def base_meta(stage, model_id, args, unet, train_timesteps, width):
    import diffusers

    return {
        "format": "scoreflow-deepfloyd-if-1",
        "stage": stage,
        "model": model_id,
        "device": torch.device(args.device).type,
        "dtype": args.dtype,
        "embedding_dim": width,
        "tokens": 77,
        "train_timesteps": train_timesteps,
        "sample_size": unet.config.sample_size,
        "timestep": "int64[B]",
        "attention": "sdpa" if args.sdpa else "AttnAddedKVProcessor",
        "torch_version": torch.__version__,
        "diffusers_version": diffusers.__version__,
    }


def example_embeds(embeddings, batch, dtype, device, width):
    if embeddings:
        rows = [e for _, e in embeddings][:batch]
        while len(rows) < batch:
            rows.append(rows[-1])
        return torch.cat(rows).to(device, dtype)
    return torch.randn(batch, 77, width, device=device, dtype=dtype)


def export_stage1(args, dtype, embeddings):
    scheduler = check_scheduler(args.stage1_model, "scheduler", 1.5)
    unet = load_unet(args.stage1_model, dtype, args.device, args.sdpa)
    size = unet.config.sample_size
    width = embeddings[0][1].shape[-1] if embeddings else (unet.config.encoder_hid_dim or 4096)
    gen = torch.Generator(device="cpu").manual_seed(0)

    def inputs(b):
        x = torch.randn(b, 3, size, size, generator=gen).to(args.device, dtype)
        t = torch.full((b,), 500, dtype=torch.int64, device=args.device)
        return x, t, example_embeds(embeddings, b, dtype, args.device, width)

    meta = base_meta(1, args.stage1_model, args, unet, scheduler.config.num_train_timesteps, width)
    print(f"tracing stage I ({args.stage1_model}, {args.device}, {args.dtype}) ...")
    trace_and_save(Stage1(unet), inputs, os.path.join(args.out, "if_stage1.pt"), meta, dtype)
    del unet
    free_memory()


def export_stage2(args, dtype, embeddings):
    scheduler = check_scheduler(args.stage2_model, "scheduler", 1.0)
    noising = check_noising_scheduler(args.stage2_model)
    unet = load_unet(args.stage2_model, dtype, args.device, args.sdpa)
    size = unet.config.sample_size
    width = embeddings[0][1].shape[-1] if embeddings else (unet.config.encoder_hid_dim or 4096)
    gen = torch.Generator(device="cpu").manual_seed(0)

    def inputs(b):
        x = torch.randn(b, 6, size, size, generator=gen).to(args.device, dtype)
        t = torch.full((b,), 500, dtype=torch.int64, device=args.device)
        labels = torch.full((b,), 250, dtype=torch.int64, device=args.device)
        return x, t, example_embeds(embeddings, b, dtype, args.device, width), labels

    meta = base_meta(2, args.stage2_model, args, unet, scheduler.config.num_train_timesteps, width)
    meta["noise_level_default"] = 250
    meta["image_noising_alphas_cumprod"] = ",".join(repr(float(a)) for a in noising.alphas_cumprod)
    print(f"tracing stage II ({args.stage2_model}, {args.device}, {args.dtype}) ...")
    trace_and_save(Stage2(unet), inputs, os.path.join(args.out, "if_stage2.pt"), meta, dtype)
    del unet
    free_memory()


def check_noising_scheduler(model_id):
    from diffusers import DDPMScheduler

    s = DDPMScheduler.from_pretrained(model_id, subfolder="image_noising_scheduler")
    print(f"  image_noising_scheduler: beta_schedule {s.config.beta_schedule!r},"
          f" {s.config.num_train_timesteps} steps (table stored in the export)")
    return s


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    dtype = torch.float16 if args.dtype == "float16" else torch.float32
    prompts = [] if args.no_default_prompts else list(DEFAULT_PROMPTS)
    if args.prompts_file:
        with open(args.prompts_file, encoding="utf-8") as f:
            prompts += [line.rstrip("\n") for line in f if line.strip()]
    prompts = list(dict.fromkeys(prompts))  # unique, in order
    embeddings = [] if args.skip_embeddings else export_embeddings(args, prompts, dtype)
    if not args.skip_stage1:
        export_stage1(args, dtype, embeddings)
    if not args.skip_stage2:
        export_stage2(args, dtype, embeddings)


if __name__ == "__main__":
    main()
