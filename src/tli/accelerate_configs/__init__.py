"""Accelerate launch configs shipped with tli (``accelerate launch --config_file FILE -m tli train …``).

Find one with :func:`tli.distributed.accelerate_config` (``python -c "from tli.distributed import
accelerate_config; print(accelerate_config('8gpu-fsdp'))"``), copy it, and edit the machine-specific lines.
"""
