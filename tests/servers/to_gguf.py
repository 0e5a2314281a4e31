"""Convert a Hugging Face checkpoint to GGUF with llama.cpp's own converter.

    python tests/servers/to_gguf.py LLAMA_CPP_SOURCE MODEL_DIR OUT.gguf

LLAMA_CPP_SOURCE is llama.cpp's source tree (`make test-llamacpp` keeps the one vendored in
llama-cpp-python's source release under .venv-llamacpp/src). The converter knows tokenizers by a
hash of how they split a test text; the tiny model's tokenizer, trained by `selfalign
tiny-model`, is byte-level BPE with GPT-2's split rule, which llama.cpp calls "gpt-2", so it is
told so instead of refusing an unknown hash. It also tries a SentencePiece vocabulary first for
Qwen2 and needs the `sentencepiece` package for that; the tiny model has none, so it goes
straight to the byte-level one. Run it with a Python that has torch, transformers and numpy.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def main(source: Path, model_dir: Path, out: Path) -> None:
    sys.path[:0] = [str(source / "gguf-py"), str(source)]  # its gguf package, not PyPI's
    from conversion import base, qwen  # llama.cpp's converter package

    qwen.Qwen2Model.set_vocab = lambda self: self._set_vocab_gpt2()
    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
    script = source / "convert_hf_to_gguf.py"
    sys.argv = [str(script), str(model_dir), "--outfile", str(out), "--outtype", "f32"]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*(Path(arg) for arg in sys.argv[1:]))
