"""llada-play: a playground for LLaDA-style masked-diffusion language models."""
from .config import PRESETS, LladaConfig, config_from_preset
from .modeling import LladaForMaskedLM, LladaModel
from .hooks import LogitsContext, StepRecord, forbid_tokens_hook
from .losses import autoregressive_loss, mc_log_likelihood, pretrain_loss, sft_loss
from .masking import forward_process, num_transfer_tokens
from .remasking import REMASKING, register_remasking
from .sampling import generate, generate_autoregressive
from .trace import StreamerHook, Trace, TraceRecorder
