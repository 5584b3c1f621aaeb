"""The one torch device / dtype resolver and SDPA kernel selector (lanepipe.torchkit), on CPU."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lanepipe import torchkit  # noqa: E402
from lanepipe.errors import BackendUnavailableError, ConfigError  # noqa: E402


def test_auto_device_is_cpu_without_a_gpu() -> None:
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert torchkit.resolve_device("auto") == want
    assert torchkit.resolve_device("cpu", key="verify.qwen_vl.device") == "cpu"


def test_bad_device_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"edit\.generative\.flux_device: expected 'auto', 'cpu'.*'gpu-please'"):
        torchkit.resolve_device("gpu-please", key="edit.generative.flux_device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_refused() -> None:
    with pytest.raises(BackendUnavailableError, match=r"segment\.sam2\.device='cuda:0': no CUDA device"):
        torchkit.resolve_device("cuda:0", key="segment.sam2.device")
    assert not torchkit.wants_cuda("auto") and torchkit.wants_cuda("cuda:1") and not torchkit.wants_cuda("cpu")


@pytest.mark.parametrize(("name", "device", "want"), [
    ("auto", "cpu", "float32"), ("auto", "cuda:0", "bfloat16"), ("float16", "cpu", "float16"),
    ("bfloat16", "cpu", "bfloat16"), ("bf16", "cpu", "bfloat16"), ("fp32", "cuda", "float32")])
def test_dtype_names(name: str, device: str, want: str) -> None:
    assert torchkit.resolve_dtype(name, device) is getattr(torch, want)


def test_bad_dtype_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"verify\.qwen_vl\.dtype: expected 'auto' or one of .*'float64'"):
        torchkit.resolve_dtype("float64", "cpu", key="verify.qwen_vl.dtype")


@pytest.mark.parametrize("fallback", [False, True])
def test_sdpa_kernels_math_computes_attention(fallback: bool) -> None:
    q = torch.randn(1, 2, 8, 16, generator=torch.Generator().manual_seed(0))
    ref = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    with torchkit.sdpa_kernels("math", fallback=fallback):
        out = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert torch.allclose(out, ref, atol=1e-6)
    with torchkit.sdpa_kernels("auto"), torchkit.sdpa_kernels("torch", fallback=True):
        pass


def test_sdpa_fallback_runs_where_the_first_kernel_cannot() -> None:
    q = torch.randn(1, 2, 8, 16)  # float32 on CPU: no flash kernel; with fallbacks math takes it
    with torchkit.sdpa_kernels("flash", fallback=True):
        torch.nn.functional.scaled_dot_product_attention(q, q, q)


def test_bad_kernel_name() -> None:
    with pytest.raises(ConfigError, match=r"sdpa: expected one of .*'fast'"):
        torchkit.sdpa_kernels("fast", key="sdpa")
