"""Builds the optional CUDA extension `shadowkv_engine._C` from csrc/.

The extension is built only where a CUDA build of torch and nvcc are both present; everywhere
else the package installs as pure Python and the plain-torch ops are used at run time.
TORCH_CUDA_ARCH_LIST defaults to "8.0;9.0a": A100, and H100/H200 with the Hopper-only instructions
(wgmma) that the key rebuild uses there. A plain "9.0" build also runs on Hopper, with the key
rebuild on mma.sync as on the A100.
"""
import glob
import os

from setuptools import setup


def cuda_extensions():
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CUDAExtension
    except ImportError:
        return [], {}
    sources = sorted(glob.glob("csrc/*.cu") + glob.glob("csrc/*.cpp"))
    if torch.version.cuda is None or CUDA_HOME is None or not sources:
        return [], {}
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0a")
    ext = CUDAExtension(
        name="shadowkv_engine._C",
        sources=sources,
        # No --use_fast_math: RoPE needs full-precision sincosf at positions of 100K+ tokens.
        extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3", "-lineinfo"]},
    )
    return [ext], {"build_ext": BuildExtension}


ext_modules, cmdclass = cuda_extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
