"""vitdream plugin template: registers the Heun sampler."""

from vitdream import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_samplers(register):
    # A lazy "module:Class" target: diffusers is imported only when the sampler is used.
    register("vitdream_heun.sampler:HeunSampler", id="heun", deterministic=True,
             description="Heun's 2nd-order method (two UNet calls per step)")
