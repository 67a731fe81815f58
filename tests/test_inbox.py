from salescalls.nightly import inbox


def test_scan_finds_recordings_and_leaves_sidecars_alone(tmp_path):
    for name in ("b.wav", "a.flac", "calls.csv", "c01.json", ".hidden.wav", "copying.wav.part", "notes.pdf"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "2026-11-23").mkdir()
    (tmp_path / "2026-11-23" / "d.ogg").write_bytes(b"x")
    (tmp_path / "quarantine").mkdir()
    (tmp_path / "quarantine" / "old.wav").write_bytes(b"x")
    found = inbox.scan(tmp_path, skip=(tmp_path / "quarantine",))
    names = [p.relative_to(tmp_path).as_posix() for p in found]
    assert names == ["2026-11-23/d.ogg", "a.flac", "b.wav", "notes.pdf"]


def test_metadata_is_keyed_by_file_name_and_bad_rows_are_reported(tmp_path):
    csv_path = tmp_path / "calls.csv"
    csv_path.write_text(
        "call_id,file,rep,started_at,segment,campaign,crm_outcome\n"
        "c1,c1.wav,Ann,2026-11-02 09:14,warm,spring,sale\n"
        "c2,,Bob,2026-11-02 10:00,cold,spring,refusal\n"
        'c3,sub/c3.flac,"O\'Neil, Jo",,hot,,\n',
        encoding="utf-8",
    )
    metadata = inbox.read_metadata(csv_path)
    assert metadata.rows["c1.wav"]["rep"] == "Ann"
    assert metadata.rows["c3.flac"] == {"call_id": "c3", "file": "sub/c3.flac", "rep": "O'Neil, Jo", "segment": "hot"}
    assert metadata.problems == (f"{csv_path}:3: no file name; row ignored",)
    assert inbox.read_metadata(tmp_path / "absent.csv").rows == {}
    (tmp_path / "wrong.csv").write_text("a,b\n1,2\n")
    assert "no 'file' column" in inbox.read_metadata(tmp_path / "wrong.csv").problems[0]


def test_quarantine_moves_the_file_and_writes_the_reason(tmp_path):
    folder = tmp_path / "quarantine"
    for _ in range(2):
        bad = tmp_path / "bad call.wav"
        bad.write_bytes(b"not audio")
        moved = inbox.quarantine(bad, folder, "not decodable audio: Invalid data", run_id="r1", content_hash="ab")
        assert not bad.exists() and moved.read_bytes() == b"not audio"
        reason = moved.with_name(moved.name + ".reason.txt").read_text()
        assert "reason: not decodable audio: Invalid data" in reason and "run_id: r1" in reason
    assert sorted(p.name for p in folder.iterdir()) == [
        "bad call.1.wav",
        "bad call.1.wav.reason.txt",
        "bad call.wav",
        "bad call.wav.reason.txt",
    ]


def test_staged_results_are_written_atomically(tmp_path):
    from tests.test_store import record

    staged = inbox.stage_result(tmp_path, record())
    assert inbox.staged_results(tmp_path) == [staged]
    assert not list(staged.parent.glob("*.tmp"))


def test_files_still_being_copied_are_left_for_the_next_run(tmp_path):
    import threading
    import time

    from salescalls.nightly.inbox import settled

    done = tmp_path / "done.wav"
    done.write_bytes(b"RIFF" + b"\0" * 1000)
    growing = tmp_path / "copying.wav"
    growing.write_bytes(b"RIFF")
    stop = threading.Event()

    def copy():  # a slow network copy: the file grows while the run looks at it
        with growing.open("ab") as handle:
            while not stop.is_set():
                handle.write(b"\0" * 100)
                handle.flush()
                time.sleep(0.02)

    writer = threading.Thread(target=copy)
    writer.start()
    try:
        ready, busy = settled([done, growing], seconds=0.3)
    finally:
        stop.set()
        writer.join()
    assert ready == [done] and busy == [growing]
    assert settled([done, growing], seconds=0.1) == ([done, growing], [])  # copied: taken next time


def test_links_are_followed_only_inside_the_inbox(tmp_path):
    folder, elsewhere = tmp_path / "inbox", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / "a.wav").write_bytes(b"x")
    (elsewhere / "b.wav").write_bytes(b"x")
    (folder / "inside.wav").symlink_to("a.wav")
    (folder / "outside.wav").symlink_to(elsewhere / "b.wav")
    (folder / "gone.wav").symlink_to(elsewhere / "gone.wav")
    (folder / "up.wav").symlink_to("../elsewhere/b.wav")
    found = inbox.scan(folder)
    assert [p.name for p in found] == ["a.wav", "gone.wav", "inside.wav", "outside.wav", "up.wav"]
    reasons = {p.name: inbox.refused(p, folder) for p in found}
    assert reasons["a.wav"] is None and reasons["inside.wav"] is None
    assert reasons["outside.wav"].startswith("symbolic link to a file outside the inbox")
    assert reasons["up.wav"].startswith("symbolic link to a file outside the inbox")
    assert reasons["gone.wav"].startswith("broken symbolic link")
