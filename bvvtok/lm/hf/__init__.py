"""The code an exported Hugging Face folder runs with `trust_remote_code=True`.

These files are copied into the folder as they are, with `bvvtok/lm/model.py` beside
them as `bvvtok_gpt.py`: the exported model is bvvtok's own, not a re-implementation.
They import `transformers`, which bvvtok itself does not need.
"""
