"""The local web dashboard and its JSON API (served beside the engine by uvicorn)."""
