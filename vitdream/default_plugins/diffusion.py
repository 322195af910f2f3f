"""Built-in plugin: the diffusers Stable Diffusion backend, its samplers, ``vitdream generate``/``reproduce``/``samplers``."""

from vitdream.hookspecs import hookimpl


@hookimpl
def register_backends(register):
    register(
        "vitdream.generation.backend:DiffusersSD",
        id="diffusers-sd",
        tasks=("generate",),
        description="Stable Diffusion 1.x/2.x pipelines from diffusers",
    )


# id, class, deterministic for a seed, stochastic (fresh noise each step), description
BUILTIN_SAMPLERS = (
    ("ddim", "DDIMSampler", True, False, "DDIM (eta=0): deterministic ODE sampler"),
    ("euler", "EulerSampler", True, False, "Euler discrete, first-order ODE sampler"),
    ("euler-ancestral", "EulerAncestralSampler", True, True, "Euler ancestral: seeded noise each step"),
    ("dpm-solver++", "DPMSolverSampler", True, False, "DPM-Solver++ (2M), multistep"),
)


@hookimpl
def register_samplers(register):
    for id, cls, deterministic, stochastic, description in BUILTIN_SAMPLERS:
        register(
            f"vitdream.generation.samplers:{cls}",
            id=id,
            description=description,
            deterministic=deterministic,
            stochastic=stochastic,
        )


@hookimpl
def register_commands(cli):
    from vitdream.generation.cli import generate_command, reproduce_command, samplers_command

    for command in (generate_command, reproduce_command, samplers_command):
        cli.add_command(command)
