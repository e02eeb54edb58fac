"""The demo's training pipeline: load, validate, split, train two models, evaluate, register.

Run it with ``shipyard run wine_pipeline.py:train --param dataset=wine@2`` in a project that
holds the wine dataset. The two models train at once. Every task but the validation gate is
cached, so a second run with the same data and code trains and registers nothing new: it
returns the first run's model version.
"""

from __future__ import annotations

from typing import Any

import shipyard as sy

FEATURES_DROPPED = ["id", "target", "batch"]
# The gate: what must hold before any model is trained on a version.
GATE = [
    {"kind": "not_null", "column": "alcohol"},
    {"kind": "allowed_values", "column": "target", "values": [0, 1, 2]},
    {"kind": "row_count", "min": 100},
]


@sy.task(cache=True)
def load(dataset: str) -> Any:
    """The dataset version as a DataFrame (cached by the version's content)."""
    return sy.datasets.get(dataset).to_pandas()


@sy.task
def validate(dataset: str) -> str:
    """Stop the pipeline with the check report when the data breaks the gate.

    Not cached, on purpose: a cache key hashes the task's code and inputs but not the module
    global GATE, so a cached pass would outlive a stricter gate. The checks are cheap.
    """
    sy.check(dataset, GATE)
    return dataset


@sy.task(cache=True)
def split(frame: Any, checked: str, seed: int) -> dict[str, Any]:
    """A stratified 70/30 split of the validated version."""
    from sklearn.model_selection import train_test_split

    features = frame.drop(columns=[c for c in FEATURES_DROPPED if c in frame.columns])
    X_train, X_test, y_train, y_test = train_test_split(
        features, frame["target"], test_size=0.3, random_state=seed, stratify=frame["target"]
    )
    return {"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test}


@sy.task(cache=True, retries=1)
def fit(kind: str, data: dict[str, Any], seed: int) -> Any:
    """One candidate model, fitted on the training part."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    if kind == "logistic":
        model: Any = LogisticRegression(max_iter=5000)
    else:
        model = RandomForestClassifier(n_estimators=100, max_depth=6, random_state=seed)
    return model.fit(data["X_train"], data["y_train"])


@sy.task(cache=True)
def evaluate(model: Any, data: dict[str, Any]) -> float:
    """Accuracy on the held-out part."""
    return float((model.predict(data["X_test"]) == data["y_test"]).mean())


@sy.task(cache=True)
def register(
    dataset: str, data: dict[str, Any], models: list[Any], scores: list[float]
) -> dict[str, Any]:
    """Log both candidates as tracked runs and register the better one."""
    best = max(range(len(models)), key=lambda k: scores[k])
    registered: dict[str, Any] = {}
    for k, (model, score) in enumerate(zip(models, scores, strict=True)):
        name = type(model).__name__
        with sy.start_run("wine", name=name) as run:
            run.use_dataset(sy.datasets.get(dataset))
            run.log_params({p: v for p, v in model.get_params().items() if v is not None})
            run.log_metric("accuracy", score)
            if k == best:
                version = run.log_model(
                    model,
                    "wine-classifier",
                    input_example=data["X_test"][:5],
                    training_sample=data["X_train"],
                )
                registered = {"model": version.ref, "accuracy": score, "onnx": version.onnx_status}
    return registered


@sy.pipeline(name="wine-training")
def train(dataset: str, seed: int = 0) -> Any:
    """Train a logistic regression and a random forest at once; register the better one."""
    frame = load(dataset)
    checked = validate(dataset)
    data = split(frame, checked, seed)
    models = [fit("logistic", data, seed), fit("forest", data, seed)]
    scores = [evaluate(model, data) for model in models]
    return register(dataset, data, models, scores)
