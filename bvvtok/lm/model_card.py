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

# The snippets name the export's folder as it was written (the card is run as written by a test, beside the export)
GENERATE = """ids = tok("Once upon a time", return_tensors="pt")
# the prompt and the new tokens must fit in the context ({context} tokens): keep max_new_tokens within it
new = min(40, model.config.max_position_embeddings - ids.input_ids.shape[1])
print(tok.decode(model.generate(**ids, max_new_tokens=new, do_sample=False)[0]))
```
"""

LOAD = {
    "hf": """```python
from transformers import AutoModelForCausalLM, AutoTokenizer

tok = AutoTokenizer.from_pretrained("{name}")
model = AutoModelForCausalLM.from_pretrained("{name}")  # transformers' own GPT-NeoX: no custom code
""" + GENERATE,
    "hf-remote": """```python
from transformers import AutoModelForCausalLM, AutoTokenizer

# bvvtok's modeling code, in this folder; AutoTokenizer reads the model's config too, hence trust_remote_code
tok = AutoTokenizer.from_pretrained("{name}", trust_remote_code=True)
model = AutoModelForCausalLM.from_pretrained("{name}", trust_remote_code=True)
""" + GENERATE,
}

CONTEXT = {
    "hf": """The model reads at most {context} tokens. transformers' GPT-NeoX does not stop `generate` there: asked for
more (a prompt plus `max_new_tokens` longer than {context}), it goes on past the context with only a log line
("... exceeded the model's predefined maximum length"), and what it writes there is not what the model was
trained to write. Keep the prompt plus `max_new_tokens` within {context} tokens, as the snippet above does.
""",
    "hf-remote": """The model reads at most {context} tokens: a `generate` whose prompt plus `max_new_tokens` is longer is
refused with a `ValueError` that names the limit, before anything is computed.
""",
}

BACK = {
    "hf": """To make a bvvtok run folder of it again (generate, eval, combine, grow, train --init-from):

```sh
bvvtok import {name} --out {run}-imported
```

A copy fine-tuned with the embedding frozen and saved with `save_pretrained` no longer holds `substrate.json`:
import it with `--substrate DIR`, DIR being the substrate folder the model was trained on, which proves the
embedding instead.
""",
    "hf-remote": """Generate, evaluate, combine and grow it from the bvvtok folder it was exported from (`{run}`).
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
               name: str, run: str) -> str:  # fmt: skip
    """README.md for an export of `format` (`hf` or `hf-remote`) named `name` (the folder's name, which every snippet
    loads) of the run or mixture `run`."""
    first = configs[0]
    facts = {"name": name, "vocab": first.vocab_size, "n_embed": first.n_embed, "scale": first.scale,
             "d_model": first.d_model, "context": min(c.context for c in configs)}  # fmt: skip
    kind = "a mixture of " + " and ".join(f"{c.n_layer}-layer" for c in configs) + " models" if len(configs) > 1 else "a model"
    trained = "frozen" if first.frozen else "trained along with the model (the unfrozen baseline)"
    parts = [
        FRONT.format(arch="- gpt_neox\n" if format == "hf" else ""),
        f"# {name}\n",
        f"{kind.capitalize()} trained with bvvtok on a {trained} input embedding: a {substrate['method']} substrate, "
        "a fixed, non-semantic code per token (Bochkov 2025, \"Emergent Semantics Beyond Token Embeddings\"). "
        + ("Its next-token logits are the weighted mean of its members' (weights "
           f"{', '.join(f'{w:g}' for w in weights)}), all on the same substrate. " if len(configs) > 1 else "")
        + f"`bvvtok export` wrote this folder from bvvtok's `{run}`.\n",
        "## Load\n",
        LOAD[format].format(**facts),
        "## Context\n",
        CONTEXT[format].format(**facts),
        "## The frozen embedding\n",
        EMBEDDING[format].format(**facts),
        "## Shape\n",
        *_shape_table(configs),
        "",
        "## Back to bvvtok\n",
        BACK[format].format(**facts, run=run),
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
