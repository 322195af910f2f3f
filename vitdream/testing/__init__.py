"""Builders of tiny, randomly initialised models for tests and demos (no downloads).

``vitdream.testing.vit`` -- tiny ViT classifiers; ``vitdream.testing.sd`` -- tiny Stable Diffusion pipelines.
"""
