from rlff_esc.llm.prefix import common_prefix_length, length_groups, plan_prefixes


def _plan(seqs, limits=None, min_length=2):
    """Each level as sorted (rows, start, end) triples."""
    limits = limits or [len(s) - 1 for s in seqs]
    return [sorted((sorted(s.rows), s.start, s.end) for s in level) for level in plan_prefixes(seqs, limits, min_length)]


def test_common_prefix_length():
    assert common_prefix_length([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix_length([1, 2], [1, 2, 3]) == 2
    assert common_prefix_length([], [1]) == 0


def test_identical_prompts_share_all_but_their_last_token():
    assert _plan([[5, 6, 7, 8]] * 4) == [[([0, 1, 2, 3], 0, 3)]]


def test_candidates_share_the_system_prompt_then_their_context():
    # two contexts after a common system prompt [1, 2, 3]; three candidates each, interleaved
    a, b = [1, 2, 3, 10, 11, 12, 13], [1, 2, 3, 20, 21, 22, 23]
    seqs = [a + [90], b + [91], a + [92], b + [93], a + [94], b + [95]]
    assert _plan(seqs) == [[([0, 1, 2, 3, 4, 5], 0, 3)],
                           [([0, 2, 4], 3, 7), ([1, 3, 5], 3, 7)]]


def test_rows_that_share_nothing_more_are_carried_on():
    seqs = [[1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 8], [1, 2, 3, 9, 9, 9, 9]]
    plan = _plan(seqs)
    assert plan[0] == [([0, 1, 2], 0, 3)]
    assert plan[1] == [([0, 1], 3, 6), ([2], 3, 3)]  # row 2 carries the shared [1, 2, 3] on


def test_limits_minimum_length_and_level_cap():
    seqs = [[1, 2, 3, 4, 5, 6]] * 2
    assert _plan(seqs, limits=[2, 6]) == [[([0, 1], 0, 2)]]  # row 0 may share only 2 tokens
    assert _plan(seqs, limits=[1, 6]) == []  # below min_length: nothing shared
    assert _plan([[1, 2, 3], [7, 8, 9]]) == []
    deep = [[1, 1, 2, 2, 3, 3, k] for k in range(2)] + [[1, 1, 2, 2, 4, 4, 4], [1, 1, 5, 5, 5, 5, 5]]
    assert len(plan_prefixes(deep, [6] * 4, min_length=2, max_levels=1)) == 1


def test_every_row_is_in_exactly_one_segment_per_level():
    seqs = [[i % 3, i % 2, 7, 7, i % 5, 9, 9, 9, i] for i in range(40)]
    levels = plan_prefixes(seqs, [len(s) - 1 for s in seqs], 2)
    assert levels
    for level in levels:
        assert sorted(r for s in level for r in s.rows) == list(range(40))
    for upper, lower in zip(levels, levels[1:]):
        for s in lower:
            assert set(s.rows) <= set(upper[s.parent].rows) and s.start == upper[s.parent].end
    assert plan_prefixes([], []) == []


def test_length_groups_split_only_where_padding_costs_more_than_a_pass():
    assert length_groups([5, 6, 7, 8], group_cost=48) == [[0, 1, 2, 3]]  # little padding: one pass
    assert length_groups([100, 5, 100, 5], group_cost=48) == [[1, 3], [0, 2]]  # 190 padded slots > 48
    assert length_groups([100, 5, 100, 5], group_cost=500) == [[1, 3, 0, 2]]
    assert length_groups([0, 30, 0, 200], group_cost=48) == [[0, 2, 1], [3]]  # empty rows join the first
