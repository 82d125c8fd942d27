"""Model cards (bundled priors per trainer) and dataset cards (profiles of the data)."""

from hyperpilot.cards.dataset import DatasetCard
from hyperpilot.cards.model import ModelCard, get_model_card, model_cards

__all__ = ["DatasetCard", "ModelCard", "get_model_card", "model_cards"]
