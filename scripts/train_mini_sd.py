"""Train the embedded mini Stable Diffusion of the shapes world from scratch (CPU, seeded).

Stage 1 trains a small AutoencoderKL (32x32 RGB <-> 8x8x4 latents) and freezes it; its
``scaling_factor`` is set to 1/std of the latents and registered in its config. Stage 2 caches the
latents of a fixed shapes dataset and trains a small UNet2DConditionModel together with a 2-layer
CLIP text encoder (whole-word tokenizer built from the world's words, plus "sks" for DreamBooth):
epsilon prediction on the standard SD "scaled_linear" schedule, min-SNR-5 loss weighting, AdamW with
warmup + cosine decay, 10% empty captions (classifier-free guidance), EMA weights.

Every ``--eval-every`` steps the EMA model is evaluated with the mini ViT (``vitdream/assets/mini-vit``,
when present): 2 generations per class at guidance 7.5 and 1.0, 20 steps; whenever guidance-7.5
accuracy is the best so far, the pipeline is saved (safetensors) to ``--out``.

The LR schedule runs over ``max(step/steps, elapsed/budget)``, so ``--budget-min`` bounds wall time
on a busy machine while ``--steps`` alone gives a fully step-determined run.

    python scripts/train_mini_sd.py --steps 6000 --budget-min 80
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

from training_common import ROOT, log, relative  # noqa: E402 -- scripts/ is on sys.path

sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from vitdream.datasets.reading import read_look  # noqa: E402
from vitdream.datasets.shapes import BACKGROUNDS, CLASSES, COLOURS, SHAPES, ShapesDataset, caption  # noqa: E402

# new words go at the end: earlier token ids stay the same, so --init can continue an older model
WORDS = ["a", "photo", "of", "on", "background", "sks", *SHAPES, *COLOURS, "white", "black", "red", "green", "blue",
         "yellow", "and", "two", "tone", "striped", "plain", "grey", "purple"]
CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"
MAX_TOKENS = 32
TEXT_WIDTH = 64


def random_caption(spec, rng: np.random.Generator) -> str:
    """A caption of ``spec`` naming each attribute with the world's probabilities (10%: empty, for CFG)."""
    if rng.random() < 0.1:
        return ""
    named = rng.random() < 0.85
    return caption(spec.shape, spec.colour if named else None, spec.background if rng.random() < 0.5 else None,
                   pattern=spec.pattern if rng.random() < 0.85 else None, colour2=spec.colour2 if named else None)


# ---------------------------------------------------------------- models
def bpe(pieces: list[str], merges: list[str]) -> list[str]:
    """Apply ``merges`` to ``pieces`` the way BPE does: always the best-ranked adjacent pair first."""
    rank = {tuple(m.split()): i for i, m in enumerate(merges)}
    while len(pieces) > 1:
        pairs = [(rank.get((a, b), len(rank)), i) for i, (a, b) in enumerate(zip(pieces, pieces[1:]))]
        best, i = min(pairs)
        if best == len(rank):
            break
        pieces = pieces[:i] + [pieces[i] + pieces[i + 1]] + pieces[i + 2:]
    return pieces


def build_tokenizer(folder: Path):
    """A CLIPTokenizer whose vocabulary is every single character plus the world's whole words."""
    from transformers import CLIPTokenizer

    vocab: list[str] = ["<|startoftext|>", "<|endoftext|>"]
    for ch in CHARS:
        vocab += [ch, ch + "</w>"]
    merges: list[str] = []
    for word in dict.fromkeys(WORDS):
        # what BPE makes of the word with the merges so far, then merges joining those pieces in order
        pieces = bpe(list(word[:-1]) + [word[-1] + "</w>"], merges)
        current = pieces[0]
        for piece in pieces[1:]:
            merge = f"{current} {piece}"
            if merge not in merges:
                merges.append(merge)
            current += piece
            if current not in vocab:
                vocab.append(current)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=MAX_TOKENS,
                        bos_token="<|startoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                        unk_token="<|endoftext|>")
    for word in dict.fromkeys(WORDS):
        ids = tok(word, add_special_tokens=False).input_ids
        if len(ids) != 1:
            log(f"note: {word!r} tokenizes to {len(ids)} tokens")
    return tok


def remap_token_embeddings(text_encoder, old_tok, new_tok) -> None:
    """Give ``text_encoder`` (trained with ``old_tok``) the vocabulary of ``new_tok``: rows of tokens both
    know are kept, the others start from the same random init as a new model's."""
    old_vocab, new_vocab = old_tok.get_vocab(), new_tok.get_vocab()
    old = text_encoder.get_input_embeddings().weight.data
    new = torch.randn(len(new_vocab), old.shape[1]) * text_encoder.config.initializer_range
    kept = [t for t in new_vocab if t in old_vocab]
    for token in kept:
        new[new_vocab[token]] = old[old_vocab[token]]
    embedding = torch.nn.Embedding(len(new_vocab), old.shape[1])
    embedding.weight.data = new
    text_encoder.set_input_embeddings(embedding)
    text_encoder.config.vocab_size = len(new_vocab)
    log(f"text encoder: {len(kept)} token embeddings kept, {len(new_vocab) - len(kept)} new")


def build_text_encoder(tok):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tok), hidden_size=TEXT_WIDTH, intermediate_size=4 * TEXT_WIDTH, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=MAX_TOKENS, projection_dim=TEXT_WIDTH,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))


def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                         up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(16, 32, 64),
                         layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=32)


def build_unet(channels: tuple[int, ...]):
    from diffusers import UNet2DConditionModel

    n = len(channels)
    return UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=channels,
                                down_block_types=("CrossAttnDownBlock2D",) * n,
                                up_block_types=("CrossAttnUpBlock2D",) * n, layers_per_block=1,
                                cross_attention_dim=TEXT_WIDTH, attention_head_dim=4, norm_num_groups=16)


def noise_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", prediction_type="epsilon", clip_sample=False,
                         steps_offset=1)


def sampling_scheduler(train_sched):
    """DDIM: vitdream's default sampler, so plain diffusers and ``vd.load_generator`` draw the same."""
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(train_sched.config)


# ---------------------------------------------------------------- helpers
def images_tensor(ds: ShapesDataset, indices) -> torch.Tensor:
    arr = np.stack([np.asarray(ds[int(i)]["image"], dtype=np.float32) for i in indices])
    return torch.from_numpy(arr).permute(0, 3, 1, 2) / 127.5 - 1.0


def lr_factor(progress: float, warmup: float = 0.03, floor: float = 0.05) -> float:
    if progress < warmup:
        return progress / warmup
    p = (progress - warmup) / (1 - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(p, 1.0)))


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        e, m = list(ema.parameters()), list(model.parameters())
        torch._foreach_lerp_(e, m, 1 - decay)


# ---------------------------------------------------------------- stage 1: VAE
def train_vae(args, work: Path):
    from diffusers import AutoencoderKL

    if (work / "vae" / "config.json").exists():
        log("stage 1: reusing trained VAE from " + str(work / "vae"))
        return AutoencoderKL.from_pretrained(work / "vae")
    torch.manual_seed(args.seed)
    vae = AutoencoderKL.from_pretrained(args.vae_init) if args.vae_init else build_vae()
    log(f"stage 1: VAE {sum(p.numel() for p in vae.parameters()) / 1e6:.2f} M params, {args.vae_steps} steps")
    ds = ShapesDataset(args.vae_steps * args.vae_batch, seed=args.seed + (101 if args.vae_init else 1), held_out=())
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    t0 = time.time()
    for step in range(args.vae_steps):
        for g in opt.param_groups:
            g["lr"] = args.vae_lr * lr_factor(step / args.vae_steps)
        x = images_tensor(ds, range(step * args.vae_batch, (step + 1) * args.vae_batch))
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample()).sample
        loss_rec = F.l1_loss(rec, x) + F.mse_loss(rec, x)
        loss = loss_rec + 1e-6 * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == args.vae_steps - 1:
            log(f"vae step {step} rec {loss_rec.item():.4f} ({(time.time() - t0) / (step + 1):.2f} s/step)")
    vae.eval()
    vae.save_pretrained(work / "vae")
    log(f"stage 1 done in {time.time() - t0:.0f} s")
    return vae


# ---------------------------------------------------------------- evaluation
class Judge:
    """The mini ViT as the quality judge (None when it is not trained yet)."""

    def __init__(self, path: Path):
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        self.proc = AutoImageProcessor.from_pretrained(path)
        self.model = AutoModelForImageClassification.from_pretrained(path).eval()

    @torch.no_grad()
    def predict(self, images) -> list[str]:
        logits = self.model(**self.proc(images=images, return_tensors="pt")).logits
        return [self.model.config.id2label[int(i)] for i in logits.argmax(-1)]


def full_prompts(n: int, seed: int) -> tuple[list[str], list]:
    """``n`` prompts naming every attribute (shape, colours, pattern, background) of world looks."""
    ds = ShapesDataset(n, seed=seed)
    specs = [ds.spec(i) for i in range(n)]
    return [caption(s.shape, s.colour, s.background, pattern=s.pattern, colour2=s.colour2) for s in specs], specs


def all_right(images, specs, judge: Judge) -> list[bool]:
    """Per image: the judge's label and the pixel reading agree with every attribute of the spec."""
    labels = judge.predict(images)
    return [label == s.label and read_look(im).matches(s.pattern, s.colour, s.colour2, s.background)
            for im, label, s in zip(images, labels, specs)]


def evaluate(pipe, judge: Judge | None, per_class: int, seed: int, grid_path: Path | None,
             n_full: int = 64) -> dict:
    prompts = [f"a photo of a {label}" for label in CLASSES for _ in range(per_class)]
    expected = [label for label in CLASSES for _ in range(per_class)]
    full, specs = full_prompts(n_full, seed)
    result = {}
    for guidance in (7.5, 1.0):
        gen = torch.Generator().manual_seed(seed)
        t0 = time.time()
        images = pipe(prompts, num_inference_steps=20, guidance_scale=guidance, generator=gen,
                      height=32, width=32).images
        result[f"gen_s_per_image@{guidance}"] = round((time.time() - t0) / len(images), 3)
        full_images = pipe(full, num_inference_steps=20, guidance_scale=guidance,
                           generator=torch.Generator().manual_seed(seed + 1), height=32, width=32).images
        if judge is not None:
            preds = judge.predict(images)
            result[f"acc@{guidance}"] = round(float(np.mean([p == e for p, e in zip(preds, expected)])), 4)
            for part, name in ((0, "colour"), (1, "shape")):
                result[f"{name}_acc@{guidance}"] = round(float(np.mean(
                    [p.split()[part] == e.split()[part] for p, e in zip(preds, expected)])), 4)
            result[f"all_right@{guidance}"] = round(float(np.mean(all_right(full_images, specs, judge))), 4)
        if grid_path is not None and guidance == 7.5:
            from PIL import Image

            shown = images + full_images[:len(images)]
            cols = per_class * 4
            grid = Image.new("RGB", (32 * cols, 32 * ((len(shown) + cols - 1) // cols)))
            for i, im in enumerate(shown):
                row, col = divmod(i, cols)
                grid.paste(im, (col * 32, row * 32))
            grid.resize((grid.width * 3, grid.height * 3), Image.Resampling.NEAREST).save(grid_path)
    return result


def make_pipeline(vae, text_encoder, tokenizer, unet, sched):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=sampling_scheduler(sched), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_pipeline(pipe, out: Path, meta: dict) -> None:
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp, safe_serialization=True)
    (tmp / "training.json").write_text(json.dumps(meta, indent=2))
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def eval_only(args) -> None:
    """Quality bar and single-image latency of the saved pipeline, on a fresh seed."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(args.out)
    pipe.set_progress_bar_config(disable=True)
    sizes = {d.name: sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) for d in args.out.iterdir()
             if d.is_dir()}
    params = {name: sum(p.numel() for p in getattr(pipe, name).parameters())
              for name in ("unet", "vae", "text_encoder")}
    timings = []
    for guidance in (7.5, 1.0):
        for _ in range(3):
            t0, c0 = time.time(), time.process_time()
            pipe("a photo of a red star", num_inference_steps=20, guidance_scale=guidance,
                 generator=torch.Generator().manual_seed(0))
            timings.append({"guidance": guidance, "wall_s": round(time.time() - t0, 3),
                            "cpu_s": round(time.process_time() - c0, 3)})
    judge = Judge(args.judge)
    quality = {}
    for name in ("DDIMScheduler", "EulerDiscreteScheduler", "DPMSolverMultistepScheduler"):
        import diffusers

        pipe.scheduler = getattr(diffusers, name).from_config(pipe.scheduler.config)
        quality[name] = evaluate(pipe, judge, args.eval_per_class, seed=args.seed + 4321,
                                 grid_path=args.work / "grid_final.png" if name == "DDIMScheduler" else None)
        log(f"{name}: {json.dumps(quality[name])}")
    report = {"bytes": sizes, "params": params, "one_image_20_steps": timings, "quality": quality}
    log(json.dumps(report))
    (args.work / "eval_final.json").write_text(json.dumps(report, indent=2))


# ---------------------------------------------------------------- stage 2: UNet + text encoder
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "vitdream/assets/mini-sd")
    p.add_argument("--work", type=Path, default=ROOT / "scripts/logs/mini_sd")
    p.add_argument("--judge", type=Path, default=ROOT / "vitdream/assets/mini-vit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--vae-steps", type=int, default=1200)
    p.add_argument("--vae-lr", type=float, default=2e-3)
    p.add_argument("--vae-init", type=Path, default=None, help="fine-tune this saved VAE instead of a new one")
    p.add_argument("--vae-batch", type=int, default=16)
    p.add_argument("--n-latents", type=int, default=20000)
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--channels", type=str, default="64,128")
    p.add_argument("--budget-min", type=float, default=0.0, help="wall-clock budget of stage 2 (0: none)")
    p.add_argument("--deadline", type=str, default="", help="HH:MM local time by which stage 2 ends")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--eval-per-class", type=int, default=2)
    p.add_argument("--eval-only", action="store_true", help="measure the pipeline in --out and exit")
    p.add_argument("--init", type=Path, default=None,
                   help="continue from the UNet and text encoder of this saved pipeline (a tokenizer with "
                        "fewer words gets its new token embeddings initialised fresh)")
    p.add_argument("--save", choices=("best", "latest"), default="best",
                   help="which evaluated EMA pipeline to keep in --out")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.eval_only:
        eval_only(args)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    log(f"args: { {k: relative(v) for k, v in vars(args).items()} }")

    tokenizer = build_tokenizer(args.work / "tokenizer_src")
    vae = train_vae(args, args.work).requires_grad_(False).eval()

    # cache latents of a fixed dataset (posterior means)
    ds = ShapesDataset(args.n_latents, seed=args.seed + 2)
    cache = args.work / f"latents_{args.n_latents}_seed{args.seed + 2}.pt"
    if cache.exists():
        latents = torch.load(cache)
    else:
        t0 = time.time()
        with torch.no_grad():
            latents = torch.cat([vae.encode(images_tensor(ds, range(i, min(i + 256, len(ds))))).latent_dist.mean
                                 for i in range(0, len(ds), 256)])
        torch.save(latents, cache)
        log(f"encoded {len(ds)} latents in {time.time() - t0:.0f} s")
    scale = float(1.0 / latents.std())
    vae.register_to_config(scaling_factor=scale)
    latents = latents * scale
    log(f"latent scaling_factor {scale:.4f}")
    specs = [ds.spec(i) for i in range(len(ds))]

    command = "scripts/train_mini_sd.py " + " ".join(relative(a) for a in sys.argv[1:])
    stages = []
    if args.init and (args.init / "training.json").exists():
        stages = json.loads((args.init / "training.json").read_text()).get("stages", [])
    torch.manual_seed(args.seed)
    if args.init:
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        text_encoder = CLIPTextModel.from_pretrained(args.init / "text_encoder")
        remap_token_embeddings(text_encoder, CLIPTokenizer.from_pretrained(args.init / "tokenizer"), tokenizer)
        unet = UNet2DConditionModel.from_pretrained(args.init / "unet")
        log(f"continuing from {args.init}")
    else:
        text_encoder = build_text_encoder(tokenizer)
        unet = build_unet(tuple(int(c) for c in args.channels.split(",")))
    sched = noise_scheduler()
    n_unet = sum(p.numel() for p in unet.parameters())
    n_text = sum(p.numel() for p in text_encoder.parameters())
    log(f"stage 2: UNet {n_unet / 1e6:.2f} M params, text encoder {n_text / 1e6:.2f} M params")
    ema_unet, ema_text = copy.deepcopy(unet).eval(), copy.deepcopy(text_encoder).eval()
    ema_unet.requires_grad_(False)
    ema_text.requires_grad_(False)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    alphas = sched.alphas_cumprod
    snr = alphas / (1 - alphas)
    token_cache: dict[str, torch.Tensor] = {}

    def tokens(texts: list[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in token_cache]
        if missing:
            ids = tokenizer(missing, padding="max_length", max_length=MAX_TOKENS, truncation=True,
                            return_tensors="pt").input_ids
            token_cache.update(zip(missing, ids))
        return torch.stack([token_cache[t] for t in texts])

    judge = Judge(args.judge) if (args.judge / "config.json").exists() else None
    rng = np.random.default_rng(args.seed)
    best, history = -1.0, []
    t0 = time.time()
    budget = args.budget_min * 60
    if args.deadline:
        hh, mm = (int(v) for v in args.deadline.split(":"))
        now = time.localtime()
        until = (hh * 60 + mm) * 60 - (now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec)
        budget = min(budget, until) if budget else until
        log(f"stage 2 wall-clock budget {budget / 60:.1f} min (deadline {args.deadline})")
    step = 0
    while True:
        progress = max(step / args.steps, (time.time() - t0) / budget if budget else 0.0)
        done = progress >= 1.0
        if step > 0 and (step % args.eval_every == 0 or done):
            if (args.judge / "config.json").exists():  # the judge may be retrained while this runs
                judge = Judge(args.judge)
            pipe = make_pipeline(vae, ema_text, tokenizer, ema_unet, sched)
            te = time.time()
            res = evaluate(pipe, judge, args.eval_per_class, seed=1234, grid_path=args.work / f"grid_{step:05d}.png")
            res.update(step=step, minutes=round((time.time() - t0) / 60, 1), eval_s=round(time.time() - te, 1))
            history.append(res)
            log(f"EVAL {json.dumps(res)}")
            score = res.get("all_right@7.5", -0.5)
            if score >= best or args.save == "latest":
                best = score
                meta = {"step": step, "minutes_stage2": res["minutes"], "eval": res, "args": {
                    k: relative(v) for k, v in vars(args).items()}, "unet_params": n_unet, "text_params": n_text,
                    "stages": stages + [{"command": command, "unet_steps": step, "minutes": res["minutes"]}]}
                save_pipeline(pipe, args.out, meta)
                log(f"saved best (acc@7.5={score}) to {args.out}")
            (args.work / "history.json").write_text(json.dumps(history, indent=1))
        if done:
            break
        for g in opt.param_groups:
            g["lr"] = args.lr * lr_factor(progress)
        idx = rng.integers(0, len(ds), args.batch)
        texts = [random_caption(specs[i], rng) for i in idx]
        x0 = latents[torch.from_numpy(idx)]
        noise = torch.randn_like(x0)
        t = torch.randint(0, sched.config.num_train_timesteps, (args.batch,))
        xt = sched.add_noise(x0, noise, t)
        cond = text_encoder(tokens(texts))[0]
        pred = unet(xt, t, cond).sample
        weight = torch.clamp(snr[t], max=5.0) / snr[t]
        loss = (weight * F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        ema_update(ema_unet, unet, decay)
        ema_update(ema_text, text_encoder, decay)
        step += 1
        if step % 50 == 0:
            threads_file = args.work / "threads"  # lets a long run take more cores once they are free
            if threads_file.exists() and int(threads_file.read_text()) != torch.get_num_threads():
                torch.set_num_threads(int(threads_file.read_text()))
                log(f"now using {torch.get_num_threads()} threads")
            log(f"step {step} loss {loss.item():.4f} lr {opt.param_groups[0]['lr']:.2e} "
                f"progress {progress:.3f} ({(time.time() - t0) / step:.2f} s/step)")
    log(f"finished: {step} steps in {(time.time() - t0) / 60:.1f} min; best acc@7.5 {best}")


if __name__ == "__main__":
    main()
