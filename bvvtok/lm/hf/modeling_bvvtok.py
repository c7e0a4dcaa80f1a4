"""A bvvtok model (or a mixture of several on one frozen substrate) as a Hugging Face causal LM.

    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    model.generate(ids, max_new_tokens=20, do_sample=False)

Each member is bvvtok's GPT (`bvvtok_gpt.py`, copied from bvvtok/lm/model.py); the
mixture's logits are the weighted mean of its members' logits. The frozen substrate
is `model.token_embeddings.weight`.
"""

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .bvvtok_gpt import GPT
from .configuration_bvvtok import BvvtokConfig


class BvvtokForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = BvvtokConfig
    base_model_prefix = "bvvtok"
    _no_split_modules = ["Block"]

    def __init__(self, config: BvvtokConfig) -> None:
        super().__init__(config)
        self.members = nn.ModuleList(
            GPT(SimpleNamespace(**shape, init="substrate"), torch.zeros(shape["vocab_size"], shape["n_embed"]))
            for shape in config.members
        )  # all-zero substrates: the real values are loaded from model.safetensors
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Every weight comes from model.safetensors: nothing to initialise."""

    @property
    def token_embeddings(self) -> nn.Module:
        """The frozen substrate (shared by every member of a mixture)."""
        return self.members[0].token_embeddings

    def get_input_embeddings(self) -> nn.Module:
        return self.token_embeddings

    def forward(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None,
                labels: torch.LongTensor | None = None, **kwargs) -> CausalLMOutputWithPast:  # fmt: skip
        """Causal LM logits (the mixture's weighted mean); with labels, the shifted cross-entropy.

        Sequences are read whole, without padding: a batch of prompts of different lengths
        should be generated one prompt at a time (or with `bvvtok generate`).
        """
        ids = input_ids[:, -self.config.context :]  # the last `context` tokens: a sliding window
        total = float(sum(self.config.mixture_weights))
        logits = torch.stack([member(ids)[0] for member in self.members])
        weights = torch.tensor([float(w) / total for w in self.config.mixture_weights], dtype=logits.dtype, device=logits.device)
        logits = torch.einsum("m,m...->...", weights, logits)  # as bvvtok's Mixture computes it
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor, **kwargs) -> dict:
        return {"input_ids": input_ids}
