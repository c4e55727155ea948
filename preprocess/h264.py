"""A video's frames as an H.264 stream that a random clip decodes from its nearest keyframe.

``storage.encoding: h264`` stores one packet per frame (no B-frames, so decode order is
display order) with an IDR keyframe every ``gop`` frames that repeats the stream headers:
frames [start, stop) decode from the keyframe at or before ``start`` alone, at most
``gop - 1`` frames more than the clip. Encoding is libx264 through PyAV, whose wheels ship
FFmpeg (nothing to install beside pip), and decoding is FFmpeg's own H.264 decoder, the one
pytorchvideo and torchvision's video readers use.

Colour: RGB is converted with OpenCV's BT.601 I420 pair on both sides (4:2:0, like the source
videos), so encoder and decoder agree on the matrix and the range; odd sizes (171 wide) are
padded by edge replication to the even size 4:2:0 needs and cropped after decoding. One
channel (quantised flow) is coded as gray. ``tune=fastdecode`` (no CABAC, no deblocking)
costs about 10% in size and halves the decode time, which is what a loader worker pays.
One encoder thread per video: the output is byte-identical from run to run.
"""

from __future__ import annotations

import fractions

import av
import cv2
import numpy as np

# Frame rate written into the stream: the packets carry no timing the readers use.
_TIME_BASE = fractions.Fraction(1, 25)


def _padded(size: int) -> int:
    return size + size % 2


def encode_h264(frames: np.ndarray, crf: int, gop: int, preset: str) -> list[np.ndarray]:
    """(T,H,W,C) uint8, C 3 (RGB) or 1 -> T packets, each 1-D uint8; packet i is a keyframe iff i % gop == 0."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise ValueError(f"expected (T,H,W,1|3) uint8, got {frames.shape} {frames.dtype}")
    count, height, width, channels = frames.shape
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height = _padded(width), _padded(height)
    ctx.pix_fmt = "yuv420p" if channels == 3 else "gray"
    ctx.time_base = _TIME_BASE
    ctx.thread_count = 1
    ctx.options = {
        "crf": str(crf),
        "preset": preset,
        "tune": "fastdecode",
        # Keyframes exactly every gop frames (never at scene cuts), no B-frames, headers on every IDR.
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1",
    }
    pad = ((0, _padded(height) - height), (0, _padded(width) - width), (0, 0))
    packets: list[av.Packet] = []
    for t, frame in enumerate(frames):
        frame = np.pad(frame, pad, mode="edge") if any(p[1] for p in pad) else frame
        if channels == 3:
            i420 = np.asarray(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420), dtype=np.uint8)
            video_frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        else:
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[..., 0]), format="gray")
        video_frame.pts = t
        packets.extend(ctx.encode(video_frame))
    packets.extend(ctx.encode(None))
    if len(packets) != count:
        raise RuntimeError(f"libx264 returned {len(packets)} packets for {count} frames")
    keyframes = [i for i, p in enumerate(packets) if p.is_keyframe]
    if keyframes != list(range(0, count, gop)):
        raise RuntimeError(f"libx264 put keyframes at {keyframes[:8]}..., expected every {gop} frames")
    return [np.frombuffer(bytes(p), np.uint8) for p in packets]


def keyframe_before(index: int, gop: int) -> int:
    """The keyframe a decode of frame ``index`` starts from."""
    return index - index % gop


def decode_h264(
    packets: list[np.ndarray],
    channels: int,
    height: int,
    width: int,
    skip: int = 0,
    crop: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """Packets of consecutive frames, the first a keyframe -> (T - skip, h, w, C) uint8.

    skip: leading frames decoded only as references (those before a clip's first); crop: (top,
    left, h, w) within the stored (height, width), default the whole frame. Only the kept frames'
    crop is converted to RGB: at even offsets an I420 crop converts exactly like the whole frame.
    """
    ctx = av.CodecContext.create("h264", "r")
    ctx.thread_count = 1  # loader workers already fill the cores
    decoded: list[av.VideoFrame] = []
    try:
        for packet in packets:
            decoded.extend(ctx.decode(av.Packet(packet.tobytes())))
        decoded.extend(ctx.decode(None))
    except av.error.FFmpegError as exc:  # a stream that does not start at a keyframe, or corrupt bytes
        raise ValueError(f"H.264 stream: {exc}; {len(decoded)} frames decoded from {len(packets)} packets") from exc
    if len(decoded) != len(packets):
        raise ValueError(f"H.264 stream: {len(decoded)} frames decoded from {len(packets)} packets")
    top, left, h, w = crop or (0, 0, height, width)
    # The crop widened to even offsets and sizes (4:2:0 chroma covers 2x2 pixels); trimmed after.
    top2, left2 = top - top % 2, left - left % 2
    h2, w2 = _padded(top + h - top2), _padded(left + w - left2)
    kept = decoded[skip:]
    luma = np.stack([_plane(f, 0)[top2 : top2 + h2, left2 : left2 + w2] for f in kept])  # (T,h2,w2)
    if channels == 1:
        return luma[:, top - top2 : top - top2 + h, left - left2 : left - left2 + w, None]
    rows, cols = slice(top2 // 2, (top2 + h2) // 2), slice(left2 // 2, (left2 + w2) // 2)
    chroma = [np.stack([_plane(f, i)[rows, cols] for f in kept]) for i in (1, 2)]  # (T,h2/2,w2/2) each
    # The clip's frames one above the other are one tall I420 image: a single conversion call.
    i420 = np.concatenate([luma.ravel(), chroma[0].ravel(), chroma[1].ravel()]).reshape(-1, w2)
    rgb = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420).reshape(len(kept), h2, w2, 3)
    return np.ascontiguousarray(rgb[:, top - top2 : top - top2 + h, left - left2 : left - left2 + w])


def _plane(frame: av.VideoFrame, index: int) -> np.ndarray:
    """One plane of a decoded frame as (rows, line size) uint8, without a copy."""
    plane = frame.planes[index]
    return np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
