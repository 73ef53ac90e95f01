"""curate.train.cpu_share: the notice that a run shares its machine, given once, after the first minute."""
import logging
import time

from curate.train.cpu_share import CpuShare, SharedCpuNotice


def _waiting_share() -> CpuShare:
    """A real share of about 0: the process waits (as when another one holds the cores)."""
    share = CpuShare(threads=4)
    time.sleep(0.2)
    return share


def test_the_notice_warns_once_when_the_share_is_below_the_threshold(caplog):
    caplog.set_level(logging.WARNING, logger="curate.train.cpu_share")
    notice = SharedCpuNotice(_waiting_share())
    assert not notice.check(run_s=59.0) and not caplog.records  # too early to tell
    assert notice.check(run_s=61.0)
    assert notice.check(run_s=120.0) and notice.warned
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "of the CPU time its 4 threads could use: another process shares the machine" in warnings[0]


def test_a_share_above_the_threshold_is_not_noticed(caplog):
    caplog.set_level(logging.WARNING, logger="curate.train.cpu_share")
    share = CpuShare(threads=1)
    notice = SharedCpuNotice(share, after_s=0.0)
    share.start = (share.start[0], share.start[1] - 3600.0)  # an hour of CPU time already used: a full share
    assert share.overall() == 1.0
    assert not notice.check(run_s=120.0) and not caplog.records
