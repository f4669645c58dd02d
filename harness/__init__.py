"""DCGAN ablation harness: registered experiments, MNIST-classifier metrics, MLflow tracking, Optuna search."""
import os

# TensorFlow's C++ start-up chatter hides the harness's own output; warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per run is enough
# A local research tool sends nothing unasked: MLflow's usage telemetry is off, for the client and the
# UI it serves, through MLflow's documented switch. MLFLOW_DISABLE_TELEMETRY=false opts back in.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
