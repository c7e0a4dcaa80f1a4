"""The model card (`README.md`) of an exported folder: what the model is, how to load it, and how to keep its
embedding frozen, for readers who never heard of bvvtok. Deterministic: no dates, no paths."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from bvvtok.lm.config import ModelConfig, changed_options

FRONT = """---
library_name: transformers
pipeline_tag: text-generation
tags:
- bvvtok
- frozen-embeddings
{arch}---
"""

LOAD = {
    "hf": """```python
from transformers import AutoModelForCausalLM, AutoTokenizer

tok = AutoTokenizer.from_pretrained("{name}")
model = AutoModelForCausalLM.from_pretrained("{name}")  # transformers' own GPT-NeoX: no custom code
ids = tok("Once upon a time", return_tensors="pt")
print(tok.decode(model.generate(**ids, max_new_tokens=40, do_sample=False)[0]))
```
""",
    "hf-remote": """```python
from transformers import AutoModelForCausalLM, AutoTokenizer

# bvvtok's modeling code, in this folder; AutoTokenizer reads the model's config too, hence trust_remote_code
tok = AutoTokenizer.from_pretrained("{name}", trust_remote_code=True)
model = AutoModelForCausalLM.from_pretrained("{name}", trust_remote_code=True)
ids = tok("Once upon a time", return_tensors="pt")
print(tok.decode(model.generate(**ids, max_new_tokens=40, do_sample=False)[0]))
```
""",
}

EMBEDDING = {
    "hf": """The input embedding `model.gpt_neox.embed_in.weight` (also `model.get_input_embeddings().weight`) is the
substrate [{vocab:,}, {n_embed}] with each value repeated {scale} time(s) along the row (`repeat_interleave`) to
fill d_model {d_model}: the substrate itself is `weight[:, ::{scale}]`. `config.n_embed` ({n_embed}) and
`config.scale` ({scale}) say so; `config.bvvtok["substrate"]` records its method and the sha256 of its
manifest, which this folder carries as `substrate.json`.

To fine-tune with the embedding frozen, as it was trained, stop its gradient before building the optimizer:

```python
model.get_input_embeddings().weight.requires_grad_(False)
```
""",
    "hf-remote": """`model.token_embeddings.weight` is the substrate itself, [{vocab:,}, {n_embed}], widened to d_model
{d_model} by repeating each value {scale} time(s) (`repeat_interleave`) inside the model. It is a buffer, not a
parameter: no optimizer moves it. `config.n_embed` and `config.scale` give its width and the repetition; the
sha256 of its manifest is that of `substrate.json` in this folder.
""",
}


def model_card(format: str, configs: Sequence[ModelConfig], weights: Sequence[float], substrate: dict[str, Any],
               name: str) -> str:  # fmt: skip
    """README.md for an export of `format` (`hf` or `hf-remote`) of the run or mixture `name`."""
    first = configs[0]
    facts = {"name": name, "vocab": first.vocab_size, "n_embed": first.n_embed, "scale": first.scale,
             "d_model": first.d_model}  # fmt: skip
    kind = "a mixture of " + " and ".join(f"{c.n_layer}-layer" for c in configs) + " models" if len(configs) > 1 else "a model"
    trained = "frozen" if first.frozen else "trained along with the model (the unfrozen baseline)"
    parts = [
        FRONT.format(arch="- gpt_neox\n" if format == "hf" else ""),
        f"# {name}\n",
        f"{kind.capitalize()} trained with bvvtok on a {trained} input embedding: a {substrate['method']} substrate, "
        "a fixed, non-semantic code per token (Bochkov 2025, \"Emergent Semantics Beyond Token Embeddings\"). "
        + ("Its next-token logits are the weighted mean of its members' (weights "
           f"{', '.join(f'{w:g}' for w in weights)}), all on the same substrate.\n" if len(configs) > 1 else "\n"),
        "## Load\n",
        LOAD[format].format(**facts),
        "## The frozen embedding\n",
        EMBEDDING[format].format(**facts),
        "## Shape\n",
        *_shape_table(configs),
        "",
        "## Back to bvvtok\n",
        f"`bvvtok import {name} --out RUN_DIR` makes a bvvtok run folder of it again (generate, eval, combine, grow, "
        "train --init-from)." if format == "hf" else "Generate, evaluate, combine and grow it from the bvvtok run "
        "folder it was exported from.",
        "",
    ]
    return "\n".join(parts)


def _shape_table(configs: Sequence[ModelConfig]) -> list[str]:
    """One row per member; an `options` column only when some member has an option off its default (so that the card
    of a model without any is as it was)."""
    options = [changed_options(dataclasses.asdict(c)) for c in configs]
    extra = any(options)
    rows = ["| d_model | layers | heads | context | vocabulary | substrate width |" + (" options |" if extra else ""),
            "|---|---|---|---|---|---|" + ("---|" if extra else "")]  # fmt: skip
    for c, o in zip(configs, options):
        row = f"| {c.d_model} | {c.n_layer} | {c.n_head} | {c.context} | {c.vocab_size:,} | {c.n_embed} |"
        rows.append(row + (f" {', '.join(f'{k} {v}' for k, v in o.items()) or '-'} |" if extra else ""))
    return rows
