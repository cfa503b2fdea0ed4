"""`--num-processes N`: bertkit re-launches itself through Accelerate's launcher.

    bertkit finetune ... --num-processes 2                       # 2 processes on this machine
    bertkit finetune ... --num-processes 4 --num-machines 2 --machine-rank 0 --main-process-ip 10.0.0.1
    bertkit finetune ... --num-processes 4 --num-machines 2 --machine-rank 1 --main-process-ip 10.0.0.1

The command runs again as N worker processes under ``accelerate launch --multi_gpu`` (torchrun
underneath; DDP with NCCL on GPUs, gloo on CPU: the launcher sets ``ACCELERATE_USE_CPU=true``
when there is no GPU, because ``accelerate launch --cpu --num_processes 2`` silently runs a
single process). Workers recognise themselves by the ``LOCAL_RANK`` torchrun gives them, so
``accelerate launch -m bertkit finetune ...`` or ``torchrun -m bertkit ...`` work as well.
This parent process only waits; SIGINT/SIGTERM reach the workers through torchrun, which
forwards them once (the workers run in their own session) and then waits 30 s before SIGKILL.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from bertkit.settings import flag

# Settings the parent uses to launch; the workers get them too and ignore them.
WORKER_VARIABLE = "LOCAL_RANK"


def needs_launch(settings: Any) -> bool:
    """True in the process the user started with --num-processes/--num-machines above 1."""
    several = getattr(settings, "num_processes", 1) > 1 or getattr(settings, "num_machines", 1) > 1
    return several and WORKER_VARIABLE not in os.environ


def is_worker_but_not_main() -> bool:
    """A launched worker other than the global rank 0 (whose messages would repeat rank 0's)."""
    return os.environ.get("RANK", "0") != "0"


def launch(command: str, settings: Any) -> int:
    """Run `bertkit COMMAND` with `settings` as launched workers; returns the exit code to end with."""
    import torch
    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    arguments = [
        "--multi_gpu",
        "--num_processes",
        str(settings.num_processes),
        "--num_machines",
        str(settings.num_machines),
        "--machine_rank",
        str(settings.machine_rank),
        "--main_process_ip",
        settings.main_process_ip,
        "--main_process_port",
        str(settings.main_process_port),
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--monitor_interval",
        "0.5",
        "-m",
        "bertkit",
        command,
        *settings_to_argv(settings),
    ]
    parsed = launch_command_parser().parse_args(arguments)
    # The workers print their own one-line errors; torchrun's failure reports would only repeat them.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    previous = os.environ.get("ACCELERATE_USE_CPU")
    if not torch.cuda.is_available():
        os.environ["ACCELERATE_USE_CPU"] = "true"
    try:
        launch_command(parsed)
    except ChildFailedError as failed:
        codes = [failure.exitcode for _, failure in sorted(failed.failures.items())]
        return next((code for code in codes if code > 0), 1)
    except SignalException as signalled:
        return 128 + int(signalled.sigval)
    finally:
        if previous is None:
            os.environ.pop("ACCELERATE_USE_CPU", None)
        else:
            os.environ["ACCELERATE_USE_CPU"] = previous
    return 0


def settings_to_argv(settings: Any) -> list[str]:
    """Command-line arguments that rebuild `settings` exactly (values differing from the defaults)."""
    options: list[str] = []
    positional: list[str] = []
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if f.name == "config" or value == default or value is None:
            continue  # the config file's values are in the settings already
        values = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        if f.metadata.get("argument"):
            positional.extend(values)
        elif isinstance(value, bool):
            options.append(flag(f.name) if value else "--no-" + f.name.replace("_", "-"))
        else:
            for item in values:
                options.extend([flag(f.name), item])
    return [*options, *positional]
