"""Audio features: 40 MFCC + delta + delta-delta per 10 ms frame, computed with librosa.

An utterance's wav (16 kHz in the release), or the audio track of its video clip (MELD: AAC,
usually 48 kHz stereo, decoded and resampled to 16 kHz mono with PyAV), becomes [T, 3 * n_mfcc]
float32 with T = 1 + samples // hop (librosa's centred frames). The 25 ms window is a Hamming
window of 400 samples zero-padded to ``n_fft`` = 512; the mel filter bank has ``n_mels`` = 40 bands
(more bands than this leaves some filters empty at n_fft = 512); the log-mel energies are librosa's
``power_to_db`` (top 80 dB kept) and the cepstra its orthonormal DCT-II. Deltas use librosa's
Savitzky-Golay derivative over ``delta_width`` = 9 frames, narrowed to the longest odd width the
utterance allows (zero for fewer than 3 frames).

The 35 prosody features of the original folds (Yoon et al.) are not computed: the fold's
``{split}_audio_prosody.npy`` is written as zeros, with a warning. The paper's models do not use
them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from selfcross.errors import ConfigError, DataError

PROSODY_DIM = 35


@dataclass(frozen=True)
class AudioSettings:
    sample_rate: int = 16000
    n_mfcc: int = 40
    n_mels: int = 40
    n_fft: int = 512
    win_ms: float = 25.0
    hop_ms: float = 10.0
    window: str = "hamming"
    delta_width: int = 9

    def __post_init__(self):
        if not 0 < self.win_length <= self.n_fft:
            raise ConfigError(
                f"audio.win_ms={self.win_ms} gives {self.win_length} samples: expected 1.."
                f"{self.n_fft} (audio.n_fft)"
            )
        if self.hop_length < 1 or not 0 < self.n_mfcc <= self.n_mels:
            raise ConfigError("audio: expected hop_ms > 0 and 0 < n_mfcc <= n_mels")

    @property
    def win_length(self) -> int:
        return round(self.sample_rate * self.win_ms / 1000)

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def feat_dim(self) -> int:
        return 3 * self.n_mfcc

    def key(self) -> dict:
        """What determines the features (names the cache)."""
        return {"kind": "mfcc", **asdict(self)}


def read_wav(path, sample_rate: int) -> np.ndarray:
    """Mono float32 samples at ``sample_rate`` (resampled with librosa if the file differs)."""
    import soundfile

    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, TypeError ...
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(path, f"cannot be read as audio ({message})") from None
    if samples.shape[0] == 0:
        raise DataError(path, "holds no audio samples")
    mono = samples.mean(axis=1)
    if rate != sample_rate:
        import librosa

        mono = librosa.resample(mono, orig_sr=rate, target_sr=sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def read_clip_audio(path, sample_rate: int) -> np.ndarray:
    """Mono float32 samples at ``sample_rate`` of a video file's first audio stream (MELD's mp4
    clips): decoded and resampled by PyAV (FFmpeg's swresample), keeping the channels, which are
    then averaged as for a wav file (swresample's own downmix would add L + R at -3 dB)."""
    import av

    chunks = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise DataError(path, "holds no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="fltp", rate=sample_rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().mean(axis=0))
            for out in resampler.resample(None):  # flush the resampler's delay
                chunks.append(out.to_ndarray().mean(axis=0))
    except DataError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as err:
        message = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise DataError(path, f"its audio cannot be decoded ({message})") from None
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if samples.shape[0] == 0:
        raise DataError(path, "holds no audio samples")
    return np.ascontiguousarray(samples, dtype=np.float32)


def mfcc_features(samples: np.ndarray, settings: AudioSettings) -> np.ndarray:
    """[T, 3 * n_mfcc] float32: MFCC, delta, delta-delta of one utterance."""
    import librosa

    mfcc = librosa.feature.mfcc(
        y=samples,
        sr=settings.sample_rate,
        n_mfcc=settings.n_mfcc,
        n_fft=settings.n_fft,
        hop_length=settings.hop_length,
        win_length=settings.win_length,
        window=settings.window,
        n_mels=settings.n_mels,
    )  # [n_mfcc, T]
    n_frames = mfcc.shape[1]
    width = min(settings.delta_width, n_frames if n_frames % 2 else n_frames - 1)
    if width >= 3:
        delta = librosa.feature.delta(mfcc, width=width, order=1)
        delta2 = librosa.feature.delta(mfcc, width=width, order=2)
    else:
        delta = delta2 = np.zeros_like(mfcc)
    return np.concatenate([mfcc, delta, delta2], axis=0).T.astype(np.float32)
