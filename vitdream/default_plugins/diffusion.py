"""Built-in plugin: the diffusers Stable Diffusion backend and its samplers."""

from vitdream.hookspecs import hookimpl


@hookimpl(trylast=True)
def register_backends(register):
    register(
        "vitdream.generation.backend:DiffusersSD",
        id="diffusers-sd",
        tasks=("generate",),
        description="Stable Diffusion 1.x/2.x pipelines from diffusers",
    )


@hookimpl(trylast=True)
def register_samplers(register):
    for id, cls, deterministic, description in (
        ("ddim", "DDIMSampler", True, "DDIM (eta=0): deterministic"),
        ("euler", "EulerSampler", True, "Euler discrete"),
        ("euler-ancestral", "EulerAncestralSampler", True, "Euler ancestral: adds seeded noise each step"),
        ("dpm-solver++", "DPMSolverSampler", True, "DPM-Solver++ (2M), multistep"),
    ):
        register(f"vitdream.generation.samplers:{cls}", id=id, description=description, deterministic=deterministic)
