"""bvvtok: frozen embedding substrates (Unicode + n-gram tokenizers, glyph and binary embeddings)."""

__version__ = "0.1.0"
