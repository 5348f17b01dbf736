"""Video frames of an utterance: sampled at 3 per second, the speaker's half, centre-cropped.

Decoding uses PyAV (FFmpeg's libraries, with wheels for every platform; OpenCV would add a large
dependency for the same decoder). A dialog's video is read once, in time order, for all the
utterances that need frames; a jump of more than ``seek_gap`` seconds to the next needed frame
seeks to the preceding key frame instead of decoding through the gap.

For an utterance spanning [start, end) the sample times are ``start + k / fps`` for
k = 0, 1, ... while below ``end``; each takes the decoded frame nearest to it. Samples past the
end of the video are missing (the utterance then has fewer frames). With ``region=whole``
(MELD, whose clips show the scene) the whole frame is scaled to ``crop`` x ``crop``. Each
IEMOCAP frame shows
both actors side by side: the half showing the speaking actor (``speaker_side``: which half
shows the F and which the M actor) is kept, optionally resized (``resize``: its shorter side, in
pixels, before cropping; a half smaller than the crop is always enlarged to fit it), and a
centred ``crop`` x ``crop`` square is cut from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from selfcross.errors import ConfigError, DataError

SIDES = ("left", "right")
REGIONS = ("speaker", "whole")
WHOLE = "whole"
"""The side of a request for the whole frame (``region=whole``)."""


@dataclass(frozen=True)
class FrameSettings:
    fps: float = 3.0
    region: str = "speaker"
    """``speaker``: a centre crop of the speaker's half; ``whole``: the whole frame scaled to
    ``crop`` x ``crop`` (aspect ratio not kept: nothing of the picture is cut off)."""
    crop: int = 224
    resize: int | None = None
    speaker_side: dict = field(default_factory=lambda: {"F": "left", "M": "right"})
    seek_gap: float = 10.0

    def __post_init__(self):
        if sorted(self.speaker_side) != ["F", "M"] or any(
            v not in SIDES for v in self.speaker_side.values()
        ):
            raise ConfigError(
                f"vision.speaker_side={dict(self.speaker_side)}: give F and M each 'left' or "
                "'right'"
            )
        if self.fps <= 0 or self.crop < 1:
            raise ConfigError("vision.fps and vision.crop must be positive")
        if self.region not in REGIONS:
            raise ConfigError(f"vision.region={self.region}: expected one of {', '.join(REGIONS)}")

    def key(self) -> dict:
        out = asdict(self)
        out.pop("seek_gap")  # changes how frames are found, not which
        if self.region == "speaker":
            out.pop("region")  # the caches of IEMOCAP runs written before the option existed
        else:
            out.pop("speaker_side")
            out.pop("resize")
        return out


def sample_times(start: float, end: float, fps: float) -> np.ndarray:
    """Seconds at which an utterance spanning [start, end) is sampled: [ceil((end-start)*fps)]."""
    n = max(1, int(np.ceil((end - start) * fps - 1e-9)))
    return start + np.arange(n) / fps


def crop_speaker(image: np.ndarray, side: str, crop: int) -> np.ndarray:
    """[crop, crop, 3] uint8 centre crop of one half of an [H, W, 3] frame (``side`` whole: the
    frame, already scaled to crop x crop)."""
    if side == WHOLE:
        return np.ascontiguousarray(image)
    height, width = image.shape[:2]
    half = image[:, : width // 2] if side == "left" else image[:, width // 2 :]
    h, w = half.shape[:2]
    top, left = (h - crop) // 2, (w - crop) // 2
    return np.ascontiguousarray(half[top : top + crop, left : left + crop])


def _scaled_size(width: int, height: int, settings: FrameSettings) -> tuple[int, int] | None:
    """Frame size at which the halves have the wanted shorter side, or None to keep it."""
    shorter = min(height, width // 2)
    scale = settings.resize / shorter if settings.resize else 1.0
    scale = max(scale, settings.crop / shorter)  # a half always fits the crop
    if abs(scale - 1.0) < 1e-9:
        return None
    new_width = max(round(width * scale), 2 * settings.crop)
    new_height = max(round(height * scale), settings.crop)
    return new_width, new_height


def video_frames(
    path, requests: list[tuple[np.ndarray, str]], settings: FrameSettings
) -> list[np.ndarray]:
    """Crops of the requested frames: per request (times, speaker side) -> [n, crop, crop, 3].

    ``n`` is the number of sample times the video covers (fewer than asked near its end).
    """
    import av

    order = sorted(
        ((t, r, k) for r, (times, _) in enumerate(requests) for k, t in enumerate(times)),
        key=lambda x: x[0],
    )
    found: list[dict[int, np.ndarray]] = [{} for _ in requests]
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(path, "holds no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            half_period = 0.5 / float(stream.average_rate or stream.guessed_rate or 30)
            offset = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
            j, position, may_seek = 0, 0.0, True
            while j < len(order):
                if may_seek and order[j][0] - position > settings.seek_gap:
                    target = offset + max(0.0, order[j][0] - 1.0)
                    container.seek(int(target / stream.time_base), stream=stream, backward=True)
                    may_seek = False  # until a frame is found: a seek that did not move the
                    # stream must not be repeated forever
                for frame in container.decode(stream):
                    if frame.time is None:
                        raise DataError(path, "video frames carry no timestamps")
                    position = frame.time - offset
                    image = None
                    while j < len(order) and position + half_period >= order[j][0]:
                        if image is None:
                            image = _to_rgb(frame, settings)
                        _, r, k = order[j]
                        found[r][k] = crop_speaker(image, requests[r][1], settings.crop)
                        j += 1
                        may_seek = True
                    gap = order[j][0] - position if j < len(order) else 0.0
                    if j == len(order) or (may_seek and gap > settings.seek_gap):
                        break
                else:
                    break  # end of the stream: later samples are missing
    except DataError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise DataError(path, f"cannot be decoded as video ({err})") from None
    out = []
    for frames in found:
        n = 0
        while n in frames:  # the covered prefix of the sample times
            n += 1
        crops = np.zeros((n, settings.crop, settings.crop, 3), np.uint8)
        for k in range(n):
            crops[k] = frames[k]
        out.append(crops)
    return out


def _to_rgb(frame, settings: FrameSettings) -> np.ndarray:
    if settings.region == WHOLE:
        return frame.to_ndarray(format="rgb24", width=settings.crop, height=settings.crop)
    size = _scaled_size(frame.width, frame.height, settings)
    if size is None:
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(format="rgb24", width=size[0], height=size[1])


def check_video(path) -> None:
    """Open the file and its first video stream; a broken file stops before any work."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(path, "holds no video stream")
    except DataError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise DataError(path, f"cannot be opened as video ({err})") from None
