"""One-line tooltips for the widgets' non-obvious controls (shown on hover, read by screen readers).

Kept in one place so every widget (and a plugin's widget) says the same thing about the same knob:
``w.FloatSlider(..., tooltip=TOOLTIPS["guidance"])``.
"""

from __future__ import annotations

TOOLTIPS: dict[str, str] = {
    # generation
    "guidance": "Classifier-free guidance scale: higher follows the prompt more closely, too high over-saturates; 1 = no guidance.",
    "steps": "Denoising steps: more is slower and usually cleaner.",
    "seed": "Random seed of the starting noise: the same seed and settings give the same image.",
    "new_seed": "Pick a random seed.",
    "sampler": "Scheduler that turns noise into an image step by step (DDIM is deterministic; ancestral samplers add noise).",
    "negative": "What the image should not show: guidance pushes away from this prompt.",
    "live_preview": "Show a rough decoded preview while the steps run (costs a little time).",
    "sweep": "Draw the same seed at several guidance scales, side by side.",
    # search
    "k": "How many nearest neighbours to show.",
    "ef_search": "HNSW search breadth: higher finds more of the true neighbours, slower.",
    "nprobe": "IVF lists searched per query: higher finds more of the true neighbours, slower.",
    "map": "Show the index as a 2-D map (PCA of the embeddings) with the query and its neighbours.",
    "more_like_this": "Search again with this image as the query.",
    # classification
    "top_k": "How many of the most likely labels to list.",
    "attention": "Overlay where the ViT looks (attention rollout) on the image.",
    # DreamBooth training
    "prior_loss_weight": "Weight of the class-image (prior preservation) loss: keeps the model's idea of the class from drifting.",
    "start": "Train from scratch in the background.",
    "stop": "Stop at the next step and save a checkpoint.",
    "resume": "Continue training from the latest checkpoint.",
}
