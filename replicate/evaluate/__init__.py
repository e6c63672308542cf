"""Bring your own model: evaluate a user's dense and compressed checkpoints, rank evaluated pairs on a
board, and plan how many images and seeds a replication needs.

- :mod:`replicate.evaluate.loading`: safe checkpoint loading (state_dict, safetensors, TorchScript,
  torch.export), refusing pickles that would run code;
- :mod:`replicate.evaluate.paired`: clean and robust accuracy of both models on the same images,
  the rigour checks per model, params / MACs / latency;
- :mod:`replicate.evaluate.submission`: the pair as one pending submission through ``evidence.submit``;
- :mod:`replicate.evaluate.run`: the `evaluate` command end to end;
- :mod:`replicate.evaluate.planning`: images and seeds a replication needs (exact McNemar, TOST, t-test).
"""

from .loading import CheckpointError, CheckpointFormat, LoadedModel, detect_format, load_checkpoint, sha256_file
from .paired import ModelCost, ModelEvaluation, PairEvaluation, check_attacks, evaluate_pair
from .submission import EVALUATED_KIND, build_rows, stub_study_id, submit_pair

__all__ = ["CheckpointError", "CheckpointFormat", "LoadedModel", "detect_format", "load_checkpoint", "sha256_file", "ModelCost", "ModelEvaluation",
           "PairEvaluation", "check_attacks", "evaluate_pair", "EVALUATED_KIND", "build_rows", "stub_study_id", "submit_pair"]
