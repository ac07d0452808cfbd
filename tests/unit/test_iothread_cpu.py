"""The idle-iothread oracle (txnstorm/oracles/iothread_cpu.py): what it reads, what it judges.
Its negative control on a real QEMU (iothreads polling a second after each event) is in
tests/iothread_idle.py."""

import os
import threading
import time
from pathlib import Path

from txnstorm.oracles import iothread_cpu
from txnstorm.oracles.iothread_cpu import ThreadTimes, parse_schedstat, parse_stat, sample, shares


def test_parse_stat_takes_utime_and_stime_after_a_name_with_spaces_and_parentheses():
    line = "4242 (IO (io0) x) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 0 0\n"
    assert parse_stat(line) == 300.0


def test_parse_schedstat_adds_running_and_waiting():
    assert parse_schedstat("1500000000 500000000 42\n") == 2.0


def fake_proc(root: Path, pid: int, threads: dict[int, tuple[str, int, int, int]], schedstat: bool = True) -> Path:
    """threads: {tid: (name, utime + stime ticks, run ns, wait ns)}."""
    for tid, (name, ticks, run, wait) in threads.items():
        task = root / str(pid) / "task" / str(tid)
        task.mkdir(parents=True, exist_ok=True)
        (task / "comm").write_text(name + "\n")
        (task / "stat").write_text(f"{tid} ({name}) S 1 2 3 4 5 6 7 8 9 10 {ticks} 0 0 0\n")
        if schedstat:
            (task / "schedstat").write_text(f"{run} {wait} 1\n")
    return root


def test_only_threads_named_as_iothreads_are_sampled(tmp_path):
    fake_proc(tmp_path, 7, {7: ("qemu-system-x86", 1, 1, 1), 8: ("CPU 0/TCG", 900, 9, 9), 9: ("IO io0", 5, 2, 3)})
    assert [t.name for t in sample(7, proc=tmp_path).values()] == ["IO io0"]


def test_a_thread_runnable_all_the_window_is_busy_though_it_got_a_third_of_a_cpu():
    before = {9: ThreadTimes(9, "IO io0", 1.0, 10.0)}
    after = {9: ThreadTimes(9, "IO io0", 2.0, 13.0)}  # 1 s of CPU, 3 s runnable (2 s waiting: hogs)
    (share,) = shares(before, after, 3.0)
    assert share.busy and share.measured_by == "schedstat" and round(share.cpu, 2) == 0.33


def test_a_thread_that_sleeps_is_not_busy_and_a_thread_born_in_the_window_is_not_judged():
    before = {9: ThreadTimes(9, "IO io0", 1.0, 10.0)}
    after = {9: ThreadTimes(9, "IO io0", 1.01, 10.05), 10: ThreadTimes(10, "IO io1", 3.0, 3.0)}
    (share,) = shares(before, after, 3.0)
    assert share.name == "IO io0" and not share.busy


def test_without_schedstat_the_cpu_share_stands_in(tmp_path):
    fake_proc(tmp_path, 7, {9: ("IO io0", 5, 0, 0)}, schedstat=False)
    (times,) = sample(7, proc=tmp_path).values()
    assert times.runnable_s is None
    (share,) = shares({9: times}, {9: ThreadTimes(9, "IO io0", times.cpu_s + 2.4, None)}, 3.0)
    assert share.measured_by == "stat" and share.busy


def test_the_measure_sees_a_spinning_thread_of_this_process_and_not_a_sleeping_one():
    """The negative control on this host's /proc: a thread that spins is busy, one that sleeps not."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    def sleep() -> None:
        stop.wait()

    threads = [threading.Thread(target=spin, name="IO spin"), threading.Thread(target=sleep, name="IO sleep")]
    for t in threads:
        t.start()
    try:
        for t in threads:  # Python names the OS thread only on some versions: name it as QEMU does
            Path(f"/proc/{os.getpid()}/task/{t.native_id}/comm").write_text(t.name)
        time.sleep(0.1)
        found = {s.name: s for s in iothread_cpu.measure(os.getpid(), 1.0)}
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert found["IO spin"].busy and not found["IO sleep"].busy, found
