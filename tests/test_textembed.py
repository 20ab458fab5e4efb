"""The numpy all-MiniLM-L6-v2 runtime (core/textembed.py): the published similarities, a torch
forward of the same weights, padding, the cache, and clear errors. Skips where the optional
caption extra (requirements-caption.lock) is absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from image2lego.core import textembed as T

needs_model = pytest.mark.skipif(
    not T.embedding_available(), reason=f"no sentence embedding: {T.embedding_unavailable_reason()}"
)


@pytest.fixture(scope="module")
def emb():
    if not T.embedding_available():
        pytest.skip(f"no sentence embedding: {T.embedding_unavailable_reason()}")
    return T.load_embedder()


#: sentence-transformers' README / quickstart for all-MiniLM-L6-v2 (printed to 4 decimals)
QUICKSTART = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
PUBLISHED = np.array([[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]])


def test_the_published_similarities_of_the_quickstart(emb):
    v = emb.embed(QUICKSTART)
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # the documentation rounds to 4 decimals: within half a unit of the last one (+ float noise)
    np.testing.assert_allclose(v @ v.T, PUBLISHED, atol=6e-5)


def test_padding_and_batch_order_do_not_change_an_embedding(emb):
    texts = ["a chair", "a cross between a car and a boat in the style of a sofa", "tv"]
    one_by_one = np.concatenate([emb.embed(t) for t in texts])
    together = emb.embed(texts)  # padded to the longest, masked
    np.testing.assert_allclose(together, one_by_one, atol=2e-6)
    np.testing.assert_allclose(emb.embed(texts[::-1])[::-1], together, atol=2e-6)
    assert emb.embed([]).shape == (0, 384)


def test_long_text_is_truncated_to_the_models_window(emb):
    ids = emb.tokens(["chair " * 1000])[0]
    assert len(ids) == T.MAX_TOKENS
    assert emb.embed("chair " * 1000).shape == (1, 384)


def _torch_forward(torch, tensors, config, ids):
    """An independent forward of the same weights with torch's own layers (nn.functional
    linear / layer_norm / gelu / scaled_dot_product_attention), in float64."""
    F = torch.nn.functional
    t = {
        k: torch.from_numpy(np.asarray(v)).double()
        for k, v in tensors.items()
        if v.dtype != np.int64
    }
    d, h = config["hidden_size"], config["num_attention_heads"]
    x = torch.tensor([ids])
    n = x.shape[1]
    hs = t["embeddings.word_embeddings.weight"][x] + t["embeddings.position_embeddings.weight"][:n]
    hs = hs + t["embeddings.token_type_embeddings.weight"][0]
    hs = F.layer_norm(
        hs, (d,), t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], 1e-12
    )
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def lin(name, z, p=p):
            return F.linear(z, t[f"{p}{name}.weight"], t[f"{p}{name}.bias"])

        q, k, v = (lin(f"attention.self.{m}", hs).view(1, n, h, d // h).transpose(1, 2)
                   for m in ("query", "key", "value"))  # fmt: skip
        ctx = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(1, n, d)
        hs = F.layer_norm(lin("attention.output.dense", ctx) + hs, (d,),
                          t[f"{p}attention.output.LayerNorm.weight"],
                          t[f"{p}attention.output.LayerNorm.bias"], 1e-12)  # fmt: skip
        up = F.gelu(lin("intermediate.dense", hs))
        hs = F.layer_norm(lin("output.dense", up) + hs, (d,), t[f"{p}output.LayerNorm.weight"],
                          t[f"{p}output.LayerNorm.bias"], 1e-12)  # fmt: skip
    pooled = hs.mean(1)
    return F.normalize(pooled, dim=1)[0].numpy()


@pytest.mark.slow
@needs_model
def test_the_numpy_forward_matches_a_torch_forward_of_the_same_weights(emb):
    """Tolerance: 1e-5 per component of the unit vector (float32 numpy vs float64 torch)."""
    torch = pytest.importorskip("torch")
    from safetensors.numpy import load

    with zipfile.ZipFile(T.model_zip_path()) as z:
        tensors = load(z.read("model.safetensors"))
        config = json.loads(z.read("config.json"))
    for text in ["a small dark red race car", "an armchair in the style of a gourd", "tv"]:
        ids = emb.tokens([text])[0]
        ref = _torch_forward(torch, tensors, config, ids)
        np.testing.assert_allclose(emb.embed(text)[0], ref, atol=1e-5)


@needs_model
def test_loading_imports_neither_torch_nor_the_model_package():
    """In a fresh interpreter: no torch (Blender has none), no transformers, and the model
    package's ``__init__`` (which prints and would want sentence-transformers) never runs."""
    code = (
        "import sys; from image2lego.core import textembed as T; e = T.load_embedder(); "
        "e.embed('a chair'); print('MODS', sorted(m for m in ('torch', 'transformers', "
        "'all_minilm_l6_v2', 'sentence_transformers', 'huggingface_hub') if m in sys.modules))"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines() == ["MODS []"], proc.stdout


def test_unavailable_reason_is_one_line_and_names_the_lock(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name, *a):
        return None if name == T.MODEL_PACKAGE else real(name, *a)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    why = T.embedding_unavailable_reason()
    assert why is not None and "\n" not in why and "requirements-caption.lock" in why
    assert not T.embedding_available()
    with pytest.raises(T.EmbeddingError, match="no sentence embedding"):
        T.load_embedder()


def test_a_broken_model_zip_is_one_clear_error(tmp_path):
    bad = tmp_path / "model.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(T.EmbeddingError, match="not a readable") as e:
        T.load_embedder(bad)
    assert "\n" not in str(e.value)
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("config.json", "{}")
    with pytest.raises(T.EmbeddingError, match="missing from the model zip"):
        T.load_embedder(bad)
    with pytest.raises(T.EmbeddingError, match="missing"):
        T.load_embedder(tmp_path / "nothing.zip")


@needs_model
def test_wrong_shapes_are_refused(emb):
    from safetensors.numpy import load

    with zipfile.ZipFile(T.model_zip_path()) as z:
        tensors = load(z.read("model.safetensors"))
        config = json.loads(z.read("config.json"))
        tok = z.read("tokenizer.json").decode()
    tensors["encoder.layer.3.output.dense.weight"] = np.zeros((384, 10), np.float32)
    with pytest.raises(T.EmbeddingError, match="layer.3.output.dense.weight has shape"):
        T.TextEmbedder(tensors, config, tok)
    with pytest.raises(T.EmbeddingError, match="not the BERT"):
        T.TextEmbedder(tensors, dict(config, hidden_act="relu"), tok)


def test_embeddings_are_cached_by_text_and_model(tmp_path):
    class Fake:
        dim = 4
        source = "fake-model"
        calls = 0

        def embed(self, texts):
            Fake.calls += 1
            return np.full((len(texts), 4), 0.5, np.float32)

    fake = Fake()
    a = T.embed_cached(fake, ["a chair", "a car"], cache=tmp_path)
    b = T.embed_cached(fake, ["a chair", "a car"], cache=tmp_path)  # from the cache
    assert Fake.calls == 1 and np.array_equal(a, b)
    T.embed_cached(fake, ["a chair"], cache=tmp_path)  # other texts: computed
    fake.source = "other-model"
    T.embed_cached(fake, ["a chair", "a car"], cache=tmp_path)  # other weights: computed
    assert Fake.calls == 3
    files = list((tmp_path / "text-embeddings").iterdir())
    assert len(files) == 3 and not any(f.name.startswith(".") for f in files)  # no temp left
    files[0].write_bytes(b"garbage")  # an unreadable entry is recomputed, not an error
    for f in files[1:]:
        f.unlink()
    T.embed_cached(fake, ["a chair", "a car"], cache=tmp_path)
    assert Fake.calls == 4
