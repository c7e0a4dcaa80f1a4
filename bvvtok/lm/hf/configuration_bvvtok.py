"""The configuration of a bvvtok model (or mixture) exported to the Hugging Face format.

`members` holds each member's fields as bvvtok wrote them (bvvtok.lm.config.ModelConfig: vocab_size, n_embed,
d_model, n_layer, n_head, context, ...), which the model is built from; they are not listed here, so a field
bvvtok adds needs no change in this file. The top level repeats the first member's (what tools and the model card
read: `config.n_embed`, `config.scale` ...), kept as they are written. The names transformers reads
(`hidden_size`, `num_hidden_layers`, ...) are derived from the members on every load, never taken from the file:
`num_hidden_layers` counts the layers of all the members, since the library sizes its key/value cache by it and a
mixture keeps every member's layers there.
"""

from transformers import PretrainedConfig


class BvvtokConfig(PretrainedConfig):
    model_type = "bvvtok"

    def __init__(
        self,
        members: list[dict] | None = None,
        mixture_weights: list[float] | None = None,
        use_cache: bool = True,
        **kwargs,
    ) -> None:
        self.members = members or []  # each member's fields: a mixture's members may differ in depth
        self.mixture_weights = mixture_weights or [1.0] * len(self.members)  # logits are the weighted mean
        kwargs.setdefault("tie_word_embeddings", False)  # the head is not the substrate
        super().__init__(**kwargs)  # the top-level fields (vocab_size, n_embed, d_model, scale ...) become attributes
        self.use_cache = use_cache  # set after: transformers 5 drops it from the keyword arguments it is given
        if self.members:
            self.hidden_size = self.members[0]["d_model"]
            self.num_hidden_layers = sum(m["n_layer"] for m in self.members)
            self.num_attention_heads = self.members[0]["n_head"]
            self.max_position_embeddings = min(m["context"] for m in self.members)
