"""The answer path with the real default embedder over the sample handbook, and the real
`openai` client against a fake OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import HANDBOOK
from tests.fakes.openai_api import FakeOpenAI, Fault
from workers.rag.answer import Answer, AnswerService
from workers.rag.audience import Audience
from workers.rag.llm import LLMError
from workers.rag.prompt import Turn
from workers.readers import for_email, org_wide
from workers.runtime import Runtime
from workers.settings import Settings

ORG = Audience.of(org_wide(["acme.com"]))


def settings_for(data_dir: Path, fake: FakeOpenAI | None = None, **extra: object) -> Settings:
    llm: dict[str, object] = {"openai_api_key": None}
    if fake is not None:
        llm = {"openai_api_key": fake.api_key, "openai_base_url": fake.base_url}
    return Settings(
        ragbot_data_dir=data_dir,
        files_path=HANDBOOK,
        ragbot_org_domains=["acme.com"],
        **llm,
        **extra,
    )  # type: ignore[arg-type]


@pytest.fixture
def extractive(handbook_data_dir: Path) -> Iterator[AnswerService]:
    with Runtime(settings_for(handbook_data_dir)) as runtime:
        yield runtime.answer_service()


@pytest.fixture
def with_llm(handbook_data_dir: Path, fake_openai: FakeOpenAI) -> Iterator[AnswerService]:
    with Runtime(
        settings_for(handbook_data_dir, fake_openai, ragbot_llm_timeout_seconds=1.0)
    ) as rt:
        yield rt.answer_service()


def cited_files(answer: Answer) -> list[str]:
    return [s.url.rsplit("/", 1)[-1] for s in answer.sources]


def test_extractive_answer_quotes_and_cites_the_right_document(extractive: AnswerService) -> None:
    answer = extractive.answer("How many days of annual leave do I get after 4 years?", ORG)
    assert not answer.abstained
    assert cited_files(answer)[0] == "leave-policy.md"
    assert "| 3 to 5 | 20 | 10 days |" in answer.text and "[1]" in answer.text
    assert answer.sources[0].title == "Leave Policy" and answer.sources[0].source == "files"


def test_korean_questions_find_korean_documents(extractive: AnswerService) -> None:
    answer = extractive.answer("연차 이월 한도는 며칠인가요?", ORG)
    assert not answer.abstained
    assert answer.sources[0].title == "휴가 규정"
    assert answer.text.startswith("문서에서 찾은 내용입니다")


def test_exact_error_codes_are_found(extractive: AnswerService) -> None:
    answer = extractive.answer("VPN-E42", ORG)
    assert answer.sources[0].title == "Remote Work and VPN" and "cert renew" in answer.text


def test_off_topic_questions_abstain(extractive: AnswerService) -> None:
    for question in ("What is the capital of France?", "Who won the 2022 World Cup?"):
        answer = extractive.answer(question, ORG)
        assert answer.abstained and answer.sources == []
        assert "couldn't find" in answer.text
    assert "찾지 못했습니다" in extractive.answer("내일 부산 날씨 어때?", ORG).text


def test_restricted_documents_only_reach_their_readers(extractive: AnswerService) -> None:
    question = "What is the salary range for a Staff Engineer?"
    for reader in (ORG, Audience.of(for_email("sam@acme.com"))):
        answer = extractive.answer(question, reader)
        assert "salary-bands.md" not in cited_files(answer)
        assert "92,000" not in answer.text
    allowed = extractive.answer(question, Audience.of(for_email("dana@acme.com")))
    assert cited_files(allowed)[0] == "salary-bands.md" and "92,000 – 118,000" in allowed.text


def test_llm_answer_cites_the_sources_it_was_given(
    with_llm: AnswerService, fake_openai: FakeOpenAI
) -> None:
    answer = with_llm.answer("How long is parental leave for non-birthing parents?", ORG)
    assert not answer.abstained and answer.text.endswith("[1]")
    assert cited_files(answer) == ["leave-policy.md"]
    path, body = fake_openai.requests[-1]
    assert path == "/v1/chat/completions" and body["model"] == "gpt-4o-mini"
    assert '<source id="1" title="Leave Policy"' in body["messages"][-1]["content"]


def test_invalid_citations_are_removed_and_the_rest_renumbered(
    with_llm: AnswerService, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = lambda messages: "Birthing parents get 16 weeks [2][9]. Others 8 [2]."
    answer = with_llm.answer("How long is parental leave?", ORG)
    assert answer.text == "Birthing parents get 16 weeks [1]. Others 8 [1]."
    assert len(answer.sources) == 1


def test_an_answer_without_a_valid_citation_abstains(
    with_llm: AnswerService, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = lambda messages: "Probably 12 weeks, I think [42]."
    answer = with_llm.answer("How long is parental leave?", ORG)
    assert answer.abstained and answer.sources == []


def test_thread_history_reaches_the_model(with_llm: AnswerService, fake_openai: FakeOpenAI) -> None:
    history = [Turn("user", "How long is parental leave?"), Turn("assistant", "16 weeks [1].")]
    with_llm.answer("And for the other parent?", ORG, history)
    messages = fake_openai.requests[-1][1]["messages"]
    assert [m["content"] for m in messages[1:3]] == ["How long is parental leave?", "16 weeks [1]."]


def test_rate_limits_are_retried(with_llm: AnswerService, fake_openai: FakeOpenAI) -> None:
    fake_openai.faults = [Fault(status=429, retry_after="0")]
    answer = with_llm.answer("How long is parental leave?", ORG)
    assert not answer.abstained and fake_openai.count("/chat/completions") == 2
    fake_openai.faults = [Fault(status=503)]
    assert not with_llm.answer("How long is parental leave?", ORG).abstained
    assert fake_openai.count("/chat/completions") == 4


def test_a_model_that_never_answers_is_a_clear_error(
    with_llm: AnswerService, fake_openai: FakeOpenAI
) -> None:
    fake_openai.faults = [Fault(delay=1.5)] * 2  # the first try and its one retry
    with pytest.raises(LLMError, match="did not answer in time"):
        with_llm.answer("How long is parental leave?", ORG)


def test_a_rejected_key_is_a_clear_error(with_llm: AnswerService, fake_openai: FakeOpenAI) -> None:
    fake_openai.api_key = "sk-rotated"
    with pytest.raises(LLMError, match="rejected our API key"):
        with_llm.answer("How long is parental leave?", ORG)


def test_streaming_yields_the_whole_reply_in_pieces(
    with_llm: AnswerService, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = lambda messages: "Sixteen weeks for birthing parents [1]."
    assert with_llm.writer is not None
    pieces = list(with_llm.writer.chat.stream([{"role": "user", "content": "hi"}]))
    assert len(pieces) > 1 and "".join(pieces) == "Sixteen weeks for birthing parents [1]."


def test_passages_of_one_document_share_one_citation() -> None:
    from datetime import UTC, datetime

    from workers.rag.answer import check_citations
    from workers.rag.index import Hit

    def passage(doc: str, n: int) -> Hit:
        return Hit(
            f"{doc}#{n}",
            doc,
            "files",
            doc.title(),
            f"file:///{doc}",
            datetime.now(UTC),
            "text",
            doc,
            1.0,
        )

    sources = [passage("leave", 0), passage("travel", 0), passage("leave", 1)]
    text, refs = check_citations("A [3][1]. B [2]. C [1] [4].", sources)
    assert text == "A [1]. B [2]. C [1]."
    assert [(r.n, r.document_id) for r in refs] == [(1, "leave"), (2, "travel")]


def test_extractive_answers_quote_the_matching_section_not_its_neighbours(
    extractive: AnswerService,
) -> None:
    answer = extractive.answer("How long is parental leave?", ORG)
    assert "16 weeks" in answer.text and "sick" not in answer.text.lower()
