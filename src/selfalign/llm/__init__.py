"""The model layer: one async chat interface over every provider.

    model = load_model("hf:/models/tiny")            # transformers, batched
    model = load_model("openai:llama3@http://localhost:8000/v1")
    result = await model.chat([{"role": "user", "content": "hi"}], schema=MySchema)
"""

from .errors import MissingExtra, ModelError, SchemaError, TransientError
from .model import CallCache, Model, RetryPolicy
from .spec import load_model, load_provider
from .types import ChatRequest, ChatResult, Completion, Message, Sampling

__all__ = [
    "CallCache",
    "ChatRequest",
    "ChatResult",
    "Completion",
    "Message",
    "MissingExtra",
    "Model",
    "ModelError",
    "RetryPolicy",
    "Sampling",
    "SchemaError",
    "TransientError",
    "load_model",
    "load_provider",
]
