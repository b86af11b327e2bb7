"""Patches applied to the vendored NiiVue (``scripts/web_assets.sh``), each an exact text
replacement that must match once: a NiiVue release that changes the code fails the set-up
loudly instead of shipping unpatched.

- ``lazy-gradient``: NiiVue 0.69.0 computes a gradient texture of the whole volume each
  time the background volume is (re)loaded (a blur and a Sobel pass over every slice),
  but only the lit and gradient-opacity render shaders sample it; the default volume
  render and the slices never do. Without a GPU (SwiftShader) the passes took 2 of the
  scan view's 3 s first frame on a 181x217x181 T1w. The patch computes it only when a
  shader that reads it is in use; ``setVolumeRenderIllumination`` refreshes the layers,
  so turning lighting on still computes it. (Upstream's next major release computes it
  only when lit, too.)
"""

from __future__ import annotations

import sys
from pathlib import Path

#: The name of each patch and the text it replaces with its own.
PATCHES = {
    "lazy-gradient": (
        "      this.volumeTexture = outTexture;\n      this.gradientTexture = gradientGL({\n",
        "      this.volumeTexture = outTexture;\n"
        "      // rollerblade patch lazy-gradient: only the shaders that sample the gradient need it\n"
        "      if (this.gradientTextureAmount > 0 || this.opts.gradientOpacity > 0 || this.renderGradientValues)\n"
        "      this.gradientTexture = gradientGL({\n",
    ),
}


def main(path: str) -> None:
    target = Path(path)
    text = target.read_text()
    for name, (old, new) in PATCHES.items():
        found = text.count(old)
        if found != 1:
            sys.exit(f"patch_niivue: {name}: the code it replaces is found {found} times in {path}, not once")
        text = text.replace(old, new)
    target.write_text(text)


if __name__ == "__main__":
    main(sys.argv[1])
