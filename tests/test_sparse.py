from __future__ import annotations

from workers.rag.sparse import document_vector, query_vector, terms


def test_korean_particles_still_match_through_bigrams() -> None:
    assert set(terms("파이프라인")) <= set(terms("파이프라인이 멈췄습니다"))
    shared = set(query_vector("휴가 신청").indices) & set(
        document_vector("휴가를 신청하려면").indices
    )
    assert len(shared) == 2


def test_identifiers_are_kept_whole_and_in_parts() -> None:
    found = terms("Error VPN-E42 on v2.3 in billing_api")
    assert {"vpn-e42", "vpn", "e42", "v2.3", "billing_api", "billing", "api"} <= set(found)
    assert "on" not in found and "in" not in found


def test_document_weights_saturate_with_repetition() -> None:
    once = document_vector("deploy")
    many = document_vector(" ".join(["deploy"] * 50))
    assert once.indices == many.indices
    assert many.values[0] > once.values[0] and many.values[0] < 2.2 * once.values[0] + 1e-9


def test_query_vectors_weigh_each_distinct_term_once() -> None:
    vector = query_vector("leave leave policy")
    assert len(vector.indices) == 2 and set(vector.values) == {1.0}
    assert query_vector("   ").indices == []
