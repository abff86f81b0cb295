"""Serving trained models: `emojax serve --model DIR` (`cli.py`) runs one FastAPI app (`app.py`) with the REST
API, WebSocket streams for webcam and microphone (`streams.py`) and an offline web page (`static/`), on an
`Engine` (`engine.py`: one bundle, or one per modality) behind a micro-batcher (`batching.py`), with limits on
what a request may hold (`limits.py`) and strict parsing of what it holds (`payloads.py`). docs/serving.md.
"""
