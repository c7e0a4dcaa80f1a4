"""`bvvtok eval`: the papers' kinds of figures for one or several model folders, on local files only.

perplexity.py (token loss, perplexity, bits per character), choice.py (multiple-choice
questions: the papers' generative protocol and the log-likelihood one), translation.py (BLEU).
"""
