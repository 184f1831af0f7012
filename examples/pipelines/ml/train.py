"""Retrain a model on the latest features."""

from typing import Literal

from prefect import flow as pipeline
from prefect import task


@task
def fit(model: str, epochs: int) -> float:
    return round(1.0 / (epochs + 1), 4)


@pipeline(name="retrain-model")
async def retrain(
    model: Literal["churn", "ltv"] = "churn",
    epochs: int = 3,
    learning_rate: float = 0.01,
) -> float:
    """Retrain a model and report its validation loss.

    Args:
        model: Which model to retrain.
        epochs: Passes over the training set.
        learning_rate: Optimizer step size.
    """
    return fit(model, epochs)
