"""`emojax serve`: one process, one port, the REST API, the WebSocket streams and the page.

emojax serve --model runs/demo/bundle
emojax serve --model bundles/fer --model bundles/ravdess --model bundles/goemotions --port 8000
"""

import argparse

from emojax.cli import run_command


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(
    prog="emojax serve",
    description=(
      "Serves a trained model (a bundle or a training workdir) over HTTP: a REST API, real-time WebSocket streams, "
      "the API docs at /docs and a web page at /, all offline."
    ),
  )
  parser.add_argument(
    "--model",
    action="append",
    required=True,
    metavar="DIR",
    help="a bundle or training workdir; give one per modality to serve single-modality models "
    "side by side (late fusion of their Ekman-7 predictions)",
  )
  parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
  parser.add_argument("--port", type=int, default=8000)
  parser.add_argument("--batch-sizes", default="1,8,32", help="compiled batch sizes; the largest is the micro-batch")
  parser.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a micro-batch gathers requests")
  parser.add_argument("--max-queue", type=int, default=64, help="items waiting before requests get 503")
  parser.add_argument("--max-request-mb", type=float, default=16.0)
  parser.add_argument("--max-audio-seconds", type=float, default=60.0)
  parser.add_argument("--max-text-chars", type=int, default=5000)
  parser.add_argument("--max-faces", type=int, default=16)
  parser.add_argument("--traceback", action="store_true", help="show the traceback of an error")

  def body(args):
    import uvicorn

    from emojax.serve.app import create_app
    from emojax.serve.engine import Engine
    from emojax.serve.limits import Limits

    engine = Engine.load(args.model, tuple(int(b) for b in args.batch_sizes.split(",")))
    limits = Limits(
      max_request_bytes=int(args.max_request_mb * 2**20),
      max_audio_seconds=args.max_audio_seconds,
      max_text_chars=args.max_text_chars,
      max_faces=args.max_faces,
    )
    app = create_app(engine, limits, max_wait_s=args.max_wait_ms / 1000, max_queue=args.max_queue)
    print(
      f"emojax serve: {', '.join(engine.by_modality)} on http://{args.host}:{args.port}/ (API docs: /docs)", flush=True
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", ws_max_size=4 * 2**20)
    return 0

  return run_command("serve", parser, argv, body)
