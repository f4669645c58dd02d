"""MNIST-classifier metric family: classifier-FID, Inception Score, KID, mode coverage, precision/recall."""
