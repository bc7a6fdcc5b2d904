"""llada-play: a playground for LLaDA-style masked-diffusion language models."""
from .model.config import PRESETS, LladaConfig, config_from_preset
from .model.modeling import LladaForMaskedLM, LladaModel
from .diffusion.hooks import LogitsContext, StepRecord, forbid_tokens_hook
from .diffusion.losses import autoregressive_loss, mc_log_likelihood, pretrain_loss, sft_loss
from .diffusion.masking import forward_process, num_transfer_tokens
from .diffusion.remasking import REMASKING, register_remasking
from .diffusion.autoregressive import generate_autoregressive
from .diffusion.sampler_config import SamplerConfig
from .diffusion.sampling import denoise, generate
from .diffusion.trace import StreamerHook, Trace, TraceRecorder
