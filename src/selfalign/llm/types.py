"""The values that cross the model interface: requests in, results out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Sequence, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = get_args(Role)
#: Messages as chat templates, TRL and JSONL files hold them: [{"role": ..., "content": ...}].
MessageDicts = list[dict[str, str]]


class Message(BaseModel):
    """One chat message: the one definition, for model calls and for training records alike.

    Three roles, because they are what every provider and chat template takes: a training record
    with another role ("tool", "human") fails validation naming its line, before any training,
    rather than in a chat template mid-run. Other keys of a message (a dataset's "name") are
    ignored, as the trainers render role and content only."""

    model_config = ConfigDict(frozen=True)
    role: Role
    content: str


#: Sampling fields a provider may not honour; it lists those it does in `sampling_fields`, and
#: the model wrapper says so at the first call that asks another provider for one.
OPTIONAL_SAMPLING = ("logit_bias", "ngram_penalties")
#: `hf:`'s decode steps (its `compile_decode` option, `--compile-decode`; static_decode.py):
#: "off" is the default path, the others run steps at fixed shapes.
COMPILE_DECODE_MODES = ("off", "eager", "compile", "graphs")


# The checks of Sampling's dict fields, given a dict only (None, their default, needs none: a
# check called for every field of every call's settings cost a fifth of making them).
def _checked_bias(bias: dict[int, float]) -> dict[int, float] | None:
    if any(not -100 <= v <= 100 or k < 0 for k, v in bias.items()):
        raise ValueError("logit_bias maps token ids (>= 0) to biases from -100 to 100")
    return bias or None


def _checked_ngrams(penalties: dict[int, float]) -> dict[int, float] | None:
    if any(not 1 <= n <= 8 or p < 0 for n, p in penalties.items()):
        raise ValueError("ngram_penalties maps n (1 to 8) to a penalty >= 0")
    return {n: p for n, p in penalties.items() if p} or None


class Sampling(BaseModel):
    """Decoding settings. temperature 0 means greedy."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(512, ge=1)
    stop: tuple[str, ...] = ()
    seed: int | None = None
    #: token id -> bias added to that token's logit at every step (OpenAI's `logit_bias`:
    #: -100 all but bans a token, 100 all but forces it).
    logit_bias: Annotated[dict[int, float], AfterValidator(_checked_bias)] | None = None
    #: n -> penalty: a token that would repeat an n-gram of the tokens generated so far loses
    #: penalty x that n-gram's count from its logit (the SELF-ALIGN reference's n-token
    #: frequency penalties; n = 1 is a plain frequency penalty).
    ngram_penalties: Annotated[dict[int, float], AfterValidator(_checked_ngrams)] | None = None

    def with_overrides(self, **overrides: Any) -> "Sampling":
        """These settings with some changed, checked as a new one is (pydantic's model_copy
        checks nothing: a temperature of -1 or a misspelt name would pass silently)."""
        return Sampling(**{**self.__dict__, **overrides}) if overrides else self


@dataclass(frozen=True)
class ChatRequest:
    """What a provider receives: messages, sampling and, for structured output, a JSON schema."""

    messages: tuple[Message, ...]
    sampling: Sampling
    json_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class TextRequest:
    """A raw text completion: the prompt string goes to the model as it is, with no chat
    template (how a base model is prompted). Stop strings are in `sampling.stop`."""

    prompt: str
    sampling: Sampling


@dataclass
class Completion:
    """What a provider returns for one request."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop", "length" or a provider's own word

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "finish_reason": self.finish_reason,
        }


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Score each continuation after the same context (plain text, no chat template)."""

    context: str
    continuations: tuple[str, ...]


@dataclass(frozen=True)
class Loglikelihood:
    """One continuation's summed log-probability given its context, and whether greedy decoding
    from the context writes exactly its tokens."""

    logprob: float
    is_greedy: bool

    def to_json(self) -> dict[str, Any]:
        return {"logprob": self.logprob, "is_greedy": self.is_greedy}


@dataclass(frozen=True)
class TokenLogprob:
    """One token of a scored prompt: its text, its log-probability after the tokens before it
    (None for the first token, which nothing precedes), and the `top` most likely tokens at its
    position with their log-probabilities, most likely first."""

    token: int
    text: str
    logprob: float | None
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class PromptLogprobs:
    """A prompt's tokens with their log-probabilities, and the greedy next token."""

    tokens: tuple[TokenLogprob, ...]
    next: TokenLogprob


@dataclass
class ChatResult:
    """What a caller of `Model.chat` gets: the text, the parsed object when a schema was given."""

    text: str
    parsed: Any | None
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    cached: bool = False
    attempts: int = 1


@dataclass
class CallStats:
    """Counters of one Model wrapper, for progress bars and records."""

    calls: int = 0
    cached_calls: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: int = 0


def as_messages(messages: Any) -> tuple[Message, ...]:
    """Accept Message objects, dicts or a bare user string."""
    if isinstance(messages, str):
        return (Message(role="user", content=messages),)
    return tuple(m if isinstance(m, Message) else Message(**m) for m in messages)


def as_dicts(messages: Sequence[Message] | str, role: Role = "user") -> MessageDicts:
    """Messages as dicts; a bare string becomes one message of `role`."""
    if isinstance(messages, str):
        messages = [Message(role=role, content=messages)]
    return [m.model_dump() for m in messages]
