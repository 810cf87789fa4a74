"""A model bundle: one directory holding everything a consumer needs for one task.

    ensemble.pt / dynamics_reward.pt       torch checkpoints (training side)
    ensemble.onnx / dynamics_reward.onnx   exported graphs (runtime side; what ROS nodes load)
    card.json                              model card: data, commands, seeds, metrics
"""

from __future__ import annotations

import json
from pathlib import Path

from .fileio import write_json

ENSEMBLE_PT, REWARD_PT = "ensemble.pt", "dynamics_reward.pt"
ENSEMBLE_ONNX, REWARD_ONNX = "ensemble.onnx", "dynamics_reward.onnx"
CARD = "card.json"


def read_card(bundle: str | Path) -> dict:
    path = Path(bundle) / CARD
    return json.loads(path.read_text()) if path.exists() else {}


def update_card(bundle: str | Path, section: str, content) -> dict:
    """Set one section of the model card (read-modify-write, written atomically)."""
    card = read_card(bundle)
    card[section] = content
    write_json(Path(bundle) / CARD, card)
    return card
