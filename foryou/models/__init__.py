"""Torch modules (no data access, no I/O, no training loops; those live in foryou.training): the heavy
ranker, two-tower retrieval, logistic regression, and the heavy ranker's ONNX export."""
