"""The configuration of a bvvtok model (or mixture) exported to the Hugging Face format.

The top-level shape is the first member's (what tools and the model card read); `members` holds every
member's. The names transformers reads (`hidden_size`, `num_hidden_layers`, ...) are derived from them on
every load, never taken from the file: `num_hidden_layers` counts the layers of all the members, since the
library sizes its key/value cache by it and a mixture keeps every member's layers there.
"""

from transformers import PretrainedConfig


class BvvtokConfig(PretrainedConfig):
    model_type = "bvvtok"

    def __init__(
        self,
        vocab_size: int = 65536,
        n_embed: int = 1024,
        d_model: int = 1024,
        n_layer: int = 16,
        n_head: int = 32,
        context: int = 1024,
        scale: int = 1,
        frozen: bool = True,
        members: list[dict] | None = None,
        mixture_weights: list[float] | None = None,
        use_cache: bool = True,
        **kwargs,
    ) -> None:
        self.vocab_size = vocab_size
        self.n_embed = n_embed  # the substrate's width; scale = d_model / n_embed (repeat_interleave)
        self.d_model = d_model
        self.n_layer = n_layer
        self.n_head = n_head
        self.context = context
        self.scale = scale
        self.frozen = frozen
        shape = {"vocab_size": vocab_size, "n_embed": n_embed, "d_model": d_model, "n_layer": n_layer,
                 "n_head": n_head, "context": context, "frozen": frozen}  # fmt: skip
        self.members = members or [shape]  # each member's shape: a mixture's members may differ in depth
        self.mixture_weights = mixture_weights or [1.0] * len(self.members)  # logits are the weighted mean
        kwargs.setdefault("tie_word_embeddings", False)  # the head is not the substrate
        super().__init__(**kwargs)
        self.use_cache = use_cache  # set after: transformers 5 drops it from the keyword arguments it is given
        self.hidden_size = d_model
        self.num_hidden_layers = sum(m["n_layer"] for m in self.members)
        self.num_attention_heads = n_head
        self.max_position_embeddings = min(m["context"] for m in self.members)
