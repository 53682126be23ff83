"""Helper for test_slow.py (not a test): train the given arms of the smoke study under ``accelerate launch``.

    accelerate launch --config_file recipes/accelerate/cpu_ddp.yaml tests/train/_two_processes.py WORLD OUT ARM...
"""

import sys

from scalpel import config
from scalpel.console import quiet_libraries
from scalpel.train.arms import run_arm

if __name__ == "__main__":
    world, out, *arm_names = sys.argv[1:]
    quiet_libraries()
    cfg = config.load("recipes/microworld/smoke.yaml", [f"study.model={world}", "study.train.steps=4",
                                                         "study.train.checkpoints=2"])
    for arm in arm_names:
        run_arm(cfg, arm, 1, out, progress=False, log_fn=lambda *_: None)
