"""The bare peer: the FastAPI endpoint a team writes by hand. The model is in memory, each
request is scored inline, nothing is stored.

    python bench/peers/bare.py --port 8101 --artifact PATH --features a,b,c --labels x,y
"""

from __future__ import annotations

import argparse

import joblib
import numpy as np
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class PredictRequest(BaseModel):
    features: dict[str, float]


def create_app(artifact: str, features: list[str], labels: list[str]) -> FastAPI:
    model = joblib.load(artifact)
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(request: PredictRequest) -> dict[str, object]:
        row = np.array([[request.features[name] for name in features]])
        probabilities = model.predict_proba(row)[0]
        best = int(np.argmax(probabilities))
        return {"label": labels[best], "confidence": float(probabilities[best])}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--artifact", required=True)
    parser.add_argument("--features", required=True)
    parser.add_argument("--labels", required=True)
    options = parser.parse_args()
    app = create_app(options.artifact, options.features.split(","), options.labels.split(","))
    uvicorn.run(app, host="127.0.0.1", port=options.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
