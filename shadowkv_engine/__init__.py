"""ShadowKV Engine: long-context LLM serving with ShadowKV sparse attention."""
from .config import EngineConfig, ShadowKVConfig
from .llm import LLM
from .outputs import CompletionOutput, RequestOutput
from .sampling_params import SamplingParams

__version__ = "0.1.0"
__all__ = ["LLM", "CompletionOutput", "EngineConfig", "RequestOutput", "SamplingParams",
           "ShadowKVConfig", "__version__"]
