import time, pytest
import tests.test_daemon_crash as t
from snapwatch.state import Store
@pytest.mark.parametrize("rate,mb", [(150, 12000), (300, 48000)])
def test_nokill(tmp_path, rate, mb):
    log_path = tmp_path / "logs" / "snap_conversions_api.log"
    log_path.parent.mkdir(); log_path.touch()
    config = t.write_config(tmp_path, log_path)
    d = t.DaemonProcess(config); d.wait_for(t.READY, 30)
    w = t.Writer(log_path, seed=1, per_second=rate, max_bytes=mb); w.start()
    time.sleep(8); w.finish()
    final = t.settle(config, w.written)
    d.terminate()
    open(f"/tmp/sw/nokill{rate}.log","w").write("".join(d.lines))
    assert final == w.written
