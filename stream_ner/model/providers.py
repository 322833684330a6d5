"""Where and how an ONNX graph runs: execution providers, session options, IO binding on CUDA.

CUDA is used when onnxruntime offers it, else the CPU. ``require_gpu`` turns "no CUDA" into a
``GpuUnavailableError`` at load instead of a silent fall back (checked on the created session, since
onnxruntime falls back to the CPU on its own when the CUDA libraries cannot be loaded).

A CPU-only session does not fuse ``Add`` + ``LayerNormalization`` into ``SkipLayerNormalization``
(``CPU_DISABLED_OPTIMIZERS``): onnxruntime's CPU kernel for the fused op is the slower one, and graphs
exported for CPUs come with it split (``stream_ner.offline.layer_norm``). A session with CUDA keeps
onnxruntime's defaults; the fp16 graph exported for CUDA comes with the op fused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from stream_ner.errors import GpuUnavailableError, ModelError

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
CPU_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)
"""onnxruntime graph transformers a CPU-only session runs without."""


def cuda_available() -> bool:
    """Whether this onnxruntime build offers the CUDA execution provider."""
    return CUDA in ort.get_available_providers()


def session_options(intra_op_threads: int = 0) -> ort.SessionOptions:
    """Options for batch inference on shared cores: all graph optimizations, sequential execution.

    ``intra_op_threads`` 0 lets onnxruntime use one thread per physical core; inter-op parallelism is
    off since a token classifier is one chain of operators. Idle intra-op threads block instead of
    spinning: the worker's Kafka and tokenizer threads share the cores, and on a loaded 2-core machine
    spinning cost about 45% of INT8 throughput (139 vs 249 posts/s) for 60% more CPU time.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def create_session(
    graph: Path, *, use_cuda: bool, require_gpu: bool, intra_op_threads: int
) -> ort.InferenceSession:
    """An inference session on CUDA (then CPU) or on the CPU alone."""
    if require_gpu and not use_cuda:
        raise GpuUnavailableError(
            f"require_gpu is set but onnxruntime {ort.__version__} offers no {CUDA} "
            f"(available: {', '.join(ort.get_available_providers())}); install onnxruntime-gpu"
        )
    providers = [CUDA, CPU] if use_cuda else [CPU]
    disabled = [] if use_cuda else list(CPU_DISABLED_OPTIMIZERS)
    try:
        session = ort.InferenceSession(
            str(graph), session_options(intra_op_threads), providers=providers, disabled_optimizers=disabled
        )
    except Exception as exc:  # onnxruntime raises its own exception types without a common base
        raise ModelError(f"cannot load ONNX graph {graph}: {exc}") from exc
    if require_gpu and CUDA not in session.get_providers():
        raise GpuUnavailableError(f"{CUDA} is installed but could not be initialised (no usable GPU or CUDA)")
    return session


class Runner:
    """Runs one session on a dict of numpy inputs and returns the ``logits`` output as float32.

    On CUDA the inputs are bound once from host memory and the output is bound on the device and copied
    back once (IO binding), so onnxruntime does no extra transfers.
    """

    def __init__(self, session: ort.InferenceSession, output: str = "logits") -> None:
        self.session = session
        self.output = output
        self.on_cuda = CUDA in session.get_providers()

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Logits ``[batch, sequence, labels]`` for one padded batch."""
        (logits,) = self.run_outputs(inputs, (self.output,))
        return logits

    def run_outputs(self, inputs: dict[str, np.ndarray], names: tuple[str, ...]) -> list[np.ndarray]:
        """The outputs ``names`` of the graph for one padded batch, as float32, in that order."""
        if not self.on_cuda:
            values = self.session.run(list(names), inputs)
        else:
            binding = self.session.io_binding()
            for name, array in inputs.items():
                binding.bind_cpu_input(name, np.ascontiguousarray(array))
            for name in names:
                binding.bind_output(name, "cuda")
            self.session.run_with_iobinding(binding)
            values = binding.copy_outputs_to_cpu()
        return [np.asarray(v, dtype=np.float32) for v in values]
