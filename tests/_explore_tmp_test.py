import random, pytest
import tests.test_daemon_crash as t
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_explore(tmp_path, monkeypatch, seed):
    orig = random.Random
    monkeypatch.setattr(t.random, "Random", lambda s=None: orig(s * 1000 + seed if isinstance(s, int) else s))
    t.test_sigkill_at_random_moments_never_loses_or_recounts_a_response(tmp_path)
