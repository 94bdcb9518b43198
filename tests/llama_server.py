"""A real OpenAI-compatible server for tests: llama.cpp's own HTTP server (through xllamacpp)
with the default SmolLM2 model. Run as ``python -m tests.llama_server PORT``."""

from __future__ import annotations

import signal
import sys

import xllamacpp

from doclane.providers.local import default_model_path


def main() -> None:
    params = xllamacpp.CommonParams()
    params.model.path = str(default_model_path())
    params.n_ctx = 2048
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    params.port = int(sys.argv[1])
    server = xllamacpp.Server(params)  # serves HTTP on 127.0.0.1:PORT while it lives
    print(f"listening on {server.listening_address}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    main()
