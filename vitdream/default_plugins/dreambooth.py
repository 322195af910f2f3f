"""Built-in plugin: DreamBooth trainers (full fine-tune and LoRA) on PyTorch Lightning."""

from vitdream.hookspecs import hookimpl


@hookimpl(trylast=True)
def register_trainers(register):
    register("vitdream.dreambooth.trainer:DreamBoothTrainer", id="dreambooth", description="DreamBooth: UNet (+ text encoder) fine-tuning with prior preservation")
    register("vitdream.dreambooth.lora:LoRADreamBoothTrainer", id="dreambooth-lora", description="DreamBooth with LoRA adapters (peft)")
