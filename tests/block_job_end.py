"""A block job ends under a storm while QMP asks for the graph.

The story: boot a guest with two dataplane disks on one iothread, storm both
with fio, and each round grow disk0's chain by two external snapshots
(``blockdev-snapshot-sync``: top <- a <- b, the guest writing into each), then
``block-stream`` b with the old top as its base while the guest writes, and ask
QEMU for its graph back to back (``query-named-block-nodes``, ``query-block``,
``query-jobs``) from the job's start until it has completed and been dismissed.
The job is created with ``auto-dismiss=false``, as libvirt creates its block
jobs: it waits, concluded, until ``job-dismiss``, so the queries also run while
the job's copy-on-read filter has been dropped from the graph but not yet freed.
That is the shape of GitLab #3149 (teeth/upstream-3149-detach-subchain): a
filter dropped with its child link removed, which ``query-named-block-nodes``
(``bdrv_refresh_filename``) then dereferences.

Measured (TCG, 2 cores): stock 10.2.2 PASSes; 10.2.2 with #3149's fix reverted and Debian's
7.2.22 (a release with the bug: 6.0 to 10.1.x) crash at round 1's first query of the concluded
job.  That crash is known issue KI-14 (known-issues.json): WARN "still reproduces" on 7.2.22,
"regression of KI-14" (a FAIL) on a QEMU where it was measured absent, as the revert build.

Who judges: QEMU's survival (a crash or hang anywhere is the test's FAIL by the
harness's death rule; its negative control is the #3149 revert build, which
this test FAILs, docs/teeth.md), the job's end (concluded without an error,
else FAIL) and ``storm.still_writing()`` after every round (the guest's disks
complete writes again; its control: with the guest stopped the same check must
fail, run at the end of the storm).  The streamed image's content is not
compared: under a storm it changes after the job, and a comparison without a
control of its own would be a check that cannot fail.  The rounds must also
have built the shape: some query listed the job's filter, and some ran while
the job was concluded (else the test is the suite's ERROR, not a PASS).
The round itself is ``txnstorm/scenario/job_end.py``.
"""

from txnstorm.errors import QemuDied, TxnstormError
from txnstorm.scenario.harness import TxnstormTest
from txnstorm.scenario.job_end import stream_round
from txnstorm.vm.topology import TWO_DISKS_ONE_IOTHREAD

STREAMED_DISK = "disk0"


class BlockJobEndsUnderStorm(TxnstormTest):
    """
    :avocado: enable
    :avocado: tags=quick,nightly,job,stream,known-issue
    """

    timeout = 600
    ISSUE = "KI-14"  # 7.2.22 segfaults here: WARN there; a crash on a QEMU measured clean is a regression

    def test_graph_queries_while_a_stream_job_ends(self):
        self.require(commands=["block-stream", "job-dismiss", "query-jobs", "query-named-block-nodes"])
        rounds, results = int(self.params.get("rounds", default=4)), []
        try:
            with self.storm(TWO_DISKS_ONE_IOTHREAD, stamps=False, also_actions=["blockdev-snapshot-sync"]) as storm:
                top = STREAMED_DISK
                for round_no in range(1, rounds + 1):
                    result, top = stream_round(storm, STREAMED_DISK, round_no, top)
                    results.append(result)
                    storm.still_writing()  # every disk writes again once the job is gone
                    storm.mark(f"round {round_no}: devices write again")
                self.assert_a_stopped_guest_fails_the_write_check(storm)
        except QemuDied as died:  # the trigger's end: the issue's verdict (KI-14), or a regression
            self.report(died.reason(), tries=1)  # KI-14's rate counts runs: this one
            return
        for r in results:
            self.log.info(r.describe())
        self.record(rounds=len(results), graph_queries=sum(r.queries for r in results),
                    queries_while_concluded=sum(r.while_concluded for r in results))  # fmt: skip
        failed = [r.describe() for r in results if r.error]
        self.assertFalse(failed, "block-stream did not complete:\n" + "\n".join(failed))
        if not any(r.saw_filter for r in results) or not any(r.while_concluded for r in results):
            raise TxnstormError("shape not built: no graph query listed the job's filter, or none ran concluded")
        self.report(None, tries=1)  # one run of the trigger, its rounds all survived
