"""Knowledge: embeddings, an incremental BM25 + dense index, search and answers grounded in it.

Heavy pieces (torch, jieba, the index libraries) load inside functions, so importing this package is cheap.
"""
