"""The configuration of a bvvtok model (or mixture) exported to the Hugging Face format."""

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
        self.hidden_size = d_model
        self.num_hidden_layers = n_layer
        self.num_attention_heads = n_head
        self.max_position_embeddings = context
        kwargs.setdefault("use_cache", False)  # bvvtok's KV cache is in `bvvtok generate`; here, plain recomputation
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)
