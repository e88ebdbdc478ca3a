"""The stream positions a training module keeps, saves and hands back on a resume."""

from qwenvl.training.stream_positions import for_rank, gather, record


def test_positions_follow_each_role_and_start_afresh_with_an_epoch():
    state = record({}, (0, 2, 0, 4, "a.tar"), epoch=0)
    state = record(state, (1, 2, 0, 3, "b.tar"), epoch=0)
    state = record(state, (0, 2, 1, 2, "c.tar"), epoch=0)
    positions = {0: (1, 2, "c.tar"), 1: (0, 3, "b.tar")}
    assert state == {"epoch": 0, "workers": 2, "positions": positions, "last_role": 0}
    assert record(state, (1, 2, 0, 2, "b.tar"), epoch=1)["positions"] == {1: (0, 2, "b.tar")}


def test_a_rank_reads_its_own_positions_only_from_a_run_of_as_many_ranks(caplog):
    mine = {"epoch": 0, "workers": 1, "positions": {0: (3, 7, "d.tar")}, "last_role": 0}
    assert gather(mine, world_size=1) == [mine]
    assert for_rank([None, mine], rank=1, world_size=2) == mine
    assert for_rank([None, mine], rank=0, world_size=2) is None  # rank 0 had no stream
    assert for_rank([mine], rank=0, world_size=2) is None
    assert "from 1 ranks and this run has 2" in caplog.text
