"""OutputWriter: the cap is in bytes, never splits a character, and the footer follows."""

from __future__ import annotations

from pathlib import Path

from ductaflow.run_folder.files import OutputWriter, footer_line


def written(path: Path) -> bytes:
    return path.read_bytes()


def test_ascii_past_the_cap_keeps_exactly_the_cap_then_a_note(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with OutputWriter(path, cap=10) as writer:
        writer.write("123456")
        writer.write("789abcdef")
        writer.write("never kept")
        writer.write_line(footer_line("x", 1.0))
    text = written(path).decode("utf-8")
    assert text.startswith("123456789a\n... output truncated at 10 bytes ...\n")
    assert "never kept" not in text
    assert text.endswith("✅ Completed x | Time: 1.00s\n")


def test_multibyte_text_is_cut_on_a_character_boundary(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with OutputWriter(path, cap=7) as writer:
        writer.write("ab")
        writer.write("€€€")  # 9 bytes: only one € (3 bytes) fits in the 5 left
    head = written(path).split(b"\n", 1)[0]
    assert head.decode("utf-8") == "ab€"


def test_a_message_larger_than_a_slice_is_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    big = "é" * (3 << 19) + "z" * (3 << 20)  # non-ASCII, then ASCII, over 1 MiB each
    with OutputWriter(path) as writer:
        writer.write(big)
        writer.write("tail")
    assert written(path).decode("utf-8") == big + "tail"
