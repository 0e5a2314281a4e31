"""`selfalign serve`: an OpenAI-compatible endpoint in front of any selfalign model.

    from selfalign.llm import load_model
    from selfalign.serve import BackgroundServer, app_for_model

    app = app_for_model(load_model("hf:/tmp/tiny"), "tiny")
    with BackgroundServer(app) as server:          # or: uvicorn.run(app, host="127.0.0.1")
        ...  # openai.OpenAI(base_url=server.url + "/v1", api_key="EMPTY")

fastapi and uvicorn come with the `serve` extra and are imported only when an app is made.
"""

from .app import Answerer, app_for_model, create_app, model_answerer
from .background import BackgroundServer

__all__ = ["Answerer", "BackgroundServer", "app_for_model", "create_app", "model_answerer"]
