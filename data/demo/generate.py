"""Render demo calls (a dialogues YAML) to audio, ground truth and calls.csv beside it.

    python data/demo/generate.py                              # the English demo, data/demo/
    python data/demo/generate.py data/demo-ru/dialogues.yaml  # the Russian one, data/demo-ru/

Every turn is synthesised with the rep's or the customer's voice, trimmed to its voiced part (so
ground-truth times are where speech really is), placed on a timeline with seeded pauses, mixed to
mono or to stereo (rep on channel 0, the customer on channel 1, with a little cross-talk bleed as
real two-channel recorders have), given a faint noise floor, and encoded by sox at 8 kHz
(telephone band 300-3400 Hz) or 16 kHz as FLAC or Ogg Vorbis. A voice is espeak-ng's (`voice`,
`speed`, `pitch`; the default engine) or Festival's (`engine: festival`, a Festival `voice`, and
sox `pitch` in cents and `tempo` to make the parties of a call sound clearly different): Debian's
Festival Russian voice is the one whisper understands, espeak-ng's Russian it does not. The
output is committed, so the demo itself needs none of these tools.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

HERE = Path(__file__).resolve().parent
SYNTH_RATE = 22050  # espeak-ng's native sample rate
LEAD_IN = 0.6  # seconds of line noise before the first word
TAIL = 0.5  # seconds after the last word
BLEED = 0.04  # amplitude of the other party leaking into a channel (about -28 dB)
NOISE_DBFS = -52.0


def synthesise(text: str, voice: dict, workdir: Path) -> np.ndarray:
    """Speak `text` with the voice's engine and return its voiced part as float32 at SYNTH_RATE."""
    wav = workdir / "turn.wav"
    if voice.get("engine", "espeak") == "festival":
        source = workdir / "turn.txt"
        source.write_text(text, encoding="utf-8")
        raw = workdir / "festival.wav"
        subprocess.run(["text2wave", "-eval", f"({voice['voice']})", str(source), "-o", str(raw)], check=True)
        effects = ["pitch", str(voice.get("pitch", 0)), "tempo", str(voice.get("tempo", 1.0))]
        subprocess.run(["sox", "-D", str(raw), "-b", "16", str(wav), *effects, "rate", str(SYNTH_RATE)], check=True)
    else:
        command = ["espeak-ng", "-v", voice["voice"], "-s", str(voice["speed"]), "-p", str(voice["pitch"])]
        subprocess.run([*command, "-w", str(wav), text], check=True)
    audio, rate = sf.read(wav, dtype="float32")
    assert rate == SYNTH_RATE, rate
    return trim_silence(audio)


def trim_silence(audio: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    voiced = np.flatnonzero(np.abs(audio) > threshold)
    return audio[voiced[0] : voiced[-1] + 1] if voiced.size else audio[:0]


def render_call(call: dict, reps: dict, seed: int, workdir: Path) -> tuple[np.ndarray, list[dict]]:
    """Return (channels x samples at SYNTH_RATE, ground-truth turns with times)."""
    rng = np.random.default_rng(seed)
    rep = reps[call["rep"]]
    voices = {"r": rep, "c": call["customer"]}
    pieces, turns = [], []
    cursor, previous_who = LEAD_IN, None
    for turn in call["turns"]:
        who, stage, text = turn[:3]
        options = turn[3] if len(turn) > 3 else {}
        voice = voices[who]
        audio = synthesise(text, voice, workdir)
        if "overlap" in options:
            start = turns[-1]["end"] - options["overlap"]
        else:
            default_pause = rng.uniform(0.25, 0.7) if who != previous_who else 0.35
            start = cursor + options.get("pause", default_pause)
        end = start + len(audio) / SYNTH_RATE
        pieces.append((who, int(round(start * SYNTH_RATE)), audio))
        turns.append(
            {
                "speaker": call["rep"] if who == "r" else "customer",
                "role": "rep" if who == "r" else "customer",
                "start": round(start, 3),
                "end": round(end, 3),
                "text": text,
                "stage": stage,
            }
        )
        cursor, previous_who = max(cursor, end), who
    length = int((cursor + TAIL) * SYNTH_RATE)
    tracks = {"r": np.zeros(length, np.float32), "c": np.zeros(length, np.float32)}
    for who, offset, audio in pieces:
        tracks[who][offset : offset + len(audio)] += audio
    if call["format"]["channels"] == 2:
        mix = np.stack([tracks["r"] + BLEED * tracks["c"], tracks["c"] + BLEED * tracks["r"]])
    else:
        mix = (tracks["r"] + tracks["c"])[None, :]
    noise = rng.normal(0.0, 10 ** (NOISE_DBFS / 20), mix.shape).astype(np.float32)
    mix = mix + noise
    mix *= 0.89 / max(float(np.abs(mix).max()), 1e-9)  # peak at -1 dBFS
    return mix, turns


def encode(mix: np.ndarray, target: Path, rate: int, workdir: Path) -> None:
    """Resample and encode with sox; 8 kHz output gets the telephone band."""
    raw = workdir / "mix.wav"
    sf.write(raw, mix.T, SYNTH_RATE, subtype="PCM_24")
    effects = ["rate", "-v", str(rate)]
    if rate <= 8000:
        effects = ["sinc", "300-3400", *effects]
    encoding = ["-C", "4"] if target.suffix == ".ogg" else ["-b", "16"]
    cmd = ["sox", "-D", "-R", str(raw), *encoding, str(target), *effects]
    subprocess.run(cmd, check=True)


def main(argv: list[str]) -> int:
    source = Path(argv[0]).resolve() if argv else HERE / "dialogues.yaml"
    spec = yaml.safe_load(source.read_text(encoding="utf-8"))
    out = source.parent
    voices = [spec["reps"][name] for name in spec["reps"]] + [call["customer"] for call in spec["calls"]]
    tools = {"sox"} | {"text2wave" if v.get("engine") == "festival" else "espeak-ng" for v in voices}
    for tool in sorted(tools):
        if shutil.which(tool) is None:
            packages = "espeak-ng festival festvox-ru sox libsox-fmt-all"
            print(f"{tool} is missing: apt-get install -y {packages}", file=sys.stderr)
            return 1
    script = yaml.safe_load((HERE.parent.parent / spec["script"]).read_text(encoding="utf-8"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for index, call in enumerate(spec["calls"]):
            fmt = call["format"]
            filename = f"{call['id']}.{fmt['ext']}"
            mix, turns = render_call(call, spec["reps"], spec["seed"] + index, workdir)
            encode(mix, out / filename, fmt["rate"], workdir)
            info = sf.info(out / filename)
            sign_off = script["stages"][-1]["name"]  # the script's last stage: its goodbye
            business = [t for t in turns if t["stage"] != sign_off]
            farewell_start = next(
                (i for i in range(len(turns)) if all(t["stage"] == sign_off for t in turns[i:])),
                len(turns),
            )
            ended_by = turns[farewell_start]["role"] if farewell_start < len(turns) else turns[-1]["role"]
            truth = {
                "call_id": call["id"],
                "file": filename,
                "script": script["script"],
                "script_version": script["version"],
                "language": spec.get("language", "en"),
                "rep": call["rep"],
                "channels": fmt["channels"],
                "sample_rate": fmt["rate"],
                "rep_channel": 0 if fmt["channels"] == 2 else None,
                "duration": round(info.duration, 3),
                "outcome": call["outcome"],
                "end_stage": business[-1]["stage"],
                "ended_by": ended_by,
                "turns": turns,
            }
            (out / f"{call['id']}.json").write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n")
            rows.append(
                {
                    "call_id": call["id"],
                    "file": filename,
                    "rep": spec["reps"][call["rep"]]["name"],
                    "started_at": str(call["started_at"]),
                    "segment": call["segment"],
                    "campaign": call["campaign"],
                    "crm_outcome": call["outcome"],
                }
            )
            print(
                f"{filename}: {info.duration:5.1f} s, {fmt['channels']} ch, {fmt['rate']} Hz, "
                f"ends at {truth['end_stage']} ({ended_by}), {call['outcome']}"
            )
    with open(out / "calls.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
