"""A bvvtok model (or a mixture of several on one frozen substrate) as a transformers causal LM.

    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    batch = tok(["the cat", "a dog saw"], return_tensors="pt", padding=True, padding_side="left")
    model.generate(**batch, max_new_tokens=20, do_sample=False)

Each member is bvvtok's GPT (`bvvtok_gpt.py`, bvvtok/lm/model.py copied as it is), and a mixture's logits
are the weighted mean of its members' (`mean_logits`, as bvvtok's Mixture computes them). Keys and values
are kept in the library's cache (the `DynamicCache` that `generate` passes): member m's layer i at index
offset_m + i, which the member reads through `MemberCache`, bvvtok's KVCache interface. The frozen
substrate is `model.token_embeddings.weight`.
"""

from itertools import accumulate
from types import SimpleNamespace

import torch
from torch import Tensor, nn
from transformers import DynamicCache, GenerationConfig, GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache
from transformers.modeling_outputs import CausalLMOutputWithPast

from .bvvtok_gpt import GPT, mean_logits
from .configuration_bvvtok import BvvtokConfig

# transformers 5 renamed the cache's argument and output `past_key_values` to `cache`: the model takes either
# and returns the installed version's, so that one folder runs on both sides of the rename
CACHE_OUTPUT = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


class MemberCache:
    """One member's layers of the library's cache, seen through bvvtok's KVCache interface."""

    def __init__(self, cache: Cache, offset: int, padding: Tensor | None) -> None:
        self.cache, self.offset, self.padding = cache, offset, padding

    @property
    def length(self) -> int:
        return self.cache.get_seq_length(self.offset)

    def extend(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        return self.cache.update(k, v, self.offset + layer)


class BvvtokForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = BvvtokConfig
    base_model_prefix = "bvvtok"
    _no_split_modules = ["Block"]

    def __init__(self, config: BvvtokConfig) -> None:
        super().__init__(config)
        self.members = nn.ModuleList(
            GPT(SimpleNamespace(**{**shape, "init": "substrate"}), torch.zeros(shape["vocab_size"], shape["n_embed"]))
            for shape in config.members
        )  # all-zero substrates (init "substrate": none drawn either), the real values loaded from model.safetensors
        self.offsets = [0, *accumulate(shape["n_layer"] for shape in config.members)][:-1]  # in the cache
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Every weight comes from model.safetensors: nothing to initialise."""

    @property
    def token_embeddings(self) -> nn.Module:
        """The frozen substrate (shared by every member of a mixture)."""
        return self.members[0].token_embeddings

    @property
    def context(self) -> int:
        """The longest sequence the model reads: a mixture's shortest member context."""
        return min(member.context for member in self.members)

    def get_input_embeddings(self) -> nn.Module:
        return self.token_embeddings

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Causal LM logits (a mixture's weighted mean); with `labels`, the shifted cross-entropy (-100 ignored).

        `attention_mask` [batch, cached + new tokens] (1 = token, 0 = padding): no token attends to padding,
        and positions count the real tokens before each one unless `position_ids` are given, so a left-padded
        batch gives what each sequence gives alone. `logits_to_keep` = n > 0 computes the last n positions only.
        """
        cache = cache if cache is not None else past_key_values
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        cached = cache.get_seq_length() if cache is not None else 0
        padding = None if attention_mask is None else self._padding(attention_mask, input_ids.shape, cached)
        logits = []
        for member, offset in zip(self.members, self.offsets):
            held = MemberCache(cache, offset, padding) if cache is not None else member.new_cache(padding)
            logits.append(member(input_ids, cache=held, last_only=logits_to_keep == 1, positions=position_ids)[0])
        logits = mean_logits(logits, self.config.mixture_weights)
        if logits_to_keep > 1:
            logits = logits[:, -logits_to_keep:]
        loss = None if labels is None else self.loss_function(logits, labels, self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, **{CACHE_OUTPUT: cache})

    @staticmethod
    def _padding(attention_mask: Tensor, shape: torch.Size, cached: int) -> Tensor:
        """bvvtok's key padding (True = padding) from a 0/1 mask over the cached and the new tokens."""
        expected = [shape[0], cached + shape[1]]
        if list(attention_mask.shape) != expected:
            raise ValueError(
                f"attention_mask has shape {list(attention_mask.shape)}, not {expected}: give one 0/1 per token "
                f"of each sequence, the {cached} in the cache and the {shape[1]} new ones"
            )
        return attention_mask == 0

    def _validate_generated_length(
        self, generation_config: GenerationConfig, input_ids_length: int, has_default_max_length: bool
    ) -> None:
        """Refuse a generation that would run past the context before computing anything, not midway."""
        super()._validate_generated_length(generation_config, input_ids_length, has_default_max_length)
        total, prompt, context = generation_config.max_length, input_ids_length, self.context
        if total > context:
            fix = f"lower max_new_tokens to {context - prompt}" if prompt < context else "shorten the prompt"
            raise ValueError(
                f"a prompt of {prompt} tokens + {total - prompt} new tokens is longer than the context {context} "
                f"of this model: {fix}"
            )
