"""Template tests: the plugin registers through vitdream and builds a working scheduler."""

import pytest


@pytest.fixture
def host():
    import vitdream_heun
    from vitdream import plugins

    plugins.reset()
    plugins.register_plugin(vitdream_heun, name="heun")
    yield plugins.get_host()
    plugins.reset()


def test_registered_with_metadata(host):
    info = {i.name: i for i in host.report()}["heun"]
    assert info.error is None and info.registered["samplers"] == ["heun"]
    assert host.registry.get("samplers", "heun").meta["deterministic"] is True


def test_builds_a_heun_scheduler_from_another_config(host):
    from diffusers import DDIMScheduler

    from vitdream.components import create

    sampler = create("samplers", "heun", use_karras_sigmas=True)
    scheduler = sampler.make_scheduler(DDIMScheduler(num_train_timesteps=1000).config)
    assert type(scheduler).__name__ == "HeunDiscreteScheduler"
    assert scheduler.config.use_karras_sigmas is True
    assert scheduler.config.num_train_timesteps == 1000
    scheduler.set_timesteps(5)
    assert len(scheduler.timesteps) == 2 * 5 - 1  # Heun evaluates twice per step
