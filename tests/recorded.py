"""Numbers pinned from the code before the twin skeleton (experiments/twins.py) hold on the kind of machine they
were recorded on: a CPU with AMX tiles, where the trainer's precision "auto" trains in bf16 autocast. Another CPU
trains in fp32, or rounds bf16 in other kernels, and the same seeds give other last digits (measured on an AMD
EPYC without AMX: the 4x4 puzzle's diffusion loss 2.990409 against 2.990948 recorded, one cell of 80 apart).
There the pinned checks are skipped and what does not depend on the machine is still tested: a run gives the
same numbers twice, and a stopped run resumes to the numbers of one that went straight through."""
import pytest

from llada_play.training.trainer import cpu_has_fast_bf16

recorded_here = pytest.mark.skipif(
    not cpu_has_fast_bf16(), reason="numbers recorded on an AMX CPU in bf16 autocast; this CPU rounds otherwise "
                                    "(tests/recorded.py)")
