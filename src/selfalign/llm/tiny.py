"""`selfalign tiny-model DIR`: a tiny causal LM in Hugging Face format that ends its turns.

It is a real Qwen2 model with a real byte-level BPE tokenizer and a ChatML chat template, so
every code path a real model takes (loading, batching, constrained decoding, training, saving,
serving) runs on it in seconds on a CPU. Its weights start random; then a few seconds of
training on short chats built from the bundled corpus, each ending with the end-of-turn token,
teach it to end its turns: its text is still meaningless, but most answers stop by themselves
after a sentence, so code paths for natural stops run as well as those for the token limit.
Everything is seeded: the same seed writes the same weights.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def build_tokenizer(vocab_size: int = 512):
    """Train a byte-level BPE tokenizer on the bundled corpus (deterministic, no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = resources.files("selfalign.llm").joinpath("tiny_corpus.txt").read_text("utf-8")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus.splitlines() * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.padding_side = "left"
    return fast


def build_tiny_model(
    out_dir: str | Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
    chat_steps: int = 120,
) -> Path:
    """Write a tiny Qwen2 causal LM with tokenizer and chat template to `out_dir`.

    chat_steps: optimiser steps on short chats that end their turn (0: purely random weights,
    which almost never stop before the token limit).
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    if chat_steps:
        teach_turn_endings(model, tokenizer, steps=chat_steps, seed=seed)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def short_chats(tokenizer, seed: int) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, answer ids) pairs: a corpus sentence asked, the next one answered.

    Prompts go through the chat template with the generation prompt; answers end with the
    end-of-turn token, so that is what the model learns to emit after a sentence."""
    import random

    corpus = resources.files("selfalign.llm").joinpath("tiny_corpus.txt").read_text("utf-8")
    sentences = [s.strip() + "." for line in corpus.splitlines() for s in line.split(". ") if len(s.split()) >= 3]
    rng = random.Random(seed)
    chats = []
    for k, question in enumerate(sentences):
        answer = " ".join(sentences[(k + 1) % len(sentences)].split()[: rng.randint(3, 12)])
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False)
        chats.append((
            tokenizer(prompt, add_special_tokens=False)["input_ids"],
            tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"],
        ))
    return chats


def teach_turn_endings(model, tokenizer, *, steps: int, seed: int, batch_size: int = 16, lr: float = 3e-3) -> float:
    """Train on `short_chats` (loss on the answers and their end-of-turn token); deterministic
    under the seed. Returns the last loss."""
    import random

    import torch

    chats = short_chats(tokenizer, seed)
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    loss = torch.tensor(0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same sums in the same order on any machine; faster this small
    try:
        for _ in range(steps):
            batch = [chats[rng.randrange(len(chats))] for _ in range(batch_size)]
            loss = _chat_step(model, optimizer, batch, tokenizer.pad_token_id)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return float(loss)


def _chat_step(model, optimizer, batch: list[tuple[list[int], list[int]]], pad_id: int):
    """One optimiser step on (prompt, answer) pairs, right-padded, loss on the answers only."""
    import torch

    width = max(len(p) + len(a) for p, a in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (prompt, answer) in enumerate(batch):
        n = len(prompt) + len(answer)
        ids[row, :n] = torch.tensor(prompt + answer)
        labels[row, len(prompt) : n] = torch.tensor(answer)
        mask[row, :n] = 1
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()
