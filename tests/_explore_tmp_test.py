import random, pytest
import tests.test_daemon_crash as t
from snapwatch.state import Store
@pytest.mark.parametrize("seed", [5, 6, 7])
def test_explore(tmp_path, monkeypatch, seed):
    orig = random.Random
    monkeypatch.setattr(t.random, "Random", lambda s=None: orig(s * 1000 + seed if isinstance(s, int) else s))
    W = t.Writer
    class Small(W):
        def __init__(self, p, seed, *, per_second, max_bytes):
            super().__init__(p, seed, per_second=150, max_bytes=12000)
    monkeypatch.setattr(t, "Writer", Small)
    D = t.DaemonProcess
    allout = []
    class KD(D):
        def __init__(self, c):
            super().__init__(c); allout.append(self)
    monkeypatch.setattr(t, "DaemonProcess", KD)
    try:
        t.test_sigkill_at_random_moments_never_loses_or_recounts_a_response(tmp_path)
    finally:
        with open(f"/tmp/sw/explore{seed}.log", "w") as f:
            for i, d in enumerate(allout):
                f.write(f"===== instance {i}\n" + "".join(d.lines))
        with Store.open(tmp_path / "state") as s:
            print("GAPS", s.gaps())
