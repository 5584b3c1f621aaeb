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



def _shared_modules(device: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Two modules sharing one layer, as both edit pipelines share T5-XXL."""
    with torch.device(device):
        shared = torch.nn.Linear(4, 3)
        a = torch.nn.Sequential(shared, torch.nn.BatchNorm1d(3))
        b = torch.nn.Sequential(shared, torch.nn.Linear(3, 2, bias=False))
    return a, b


def test_host_parking_leaves_host_modules_alone() -> None:
    """On a CPU pipeline (the embedded default) parking and activation move nothing and copy nothing."""
    a, b = _shared_modules("cpu")
    park = torchkit.HostParking()
    assert len(park.tensors(a, b)) == 2 + 2 + 3 + 1  # shared weight/bias once; BN's 2 params + 3 buffers
    before = [t.data.data_ptr() for t in park.tensors(a, b)]
    assert park.park(a, b) == 0 and park.activate("cpu", a, b) == 0 and park.copies == 0
    assert [t.data.data_ptr() for t in park.tensors(a, b)] == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="moves weights between a CUDA GPU and host memory")
def test_host_parking_copies_each_weight_to_the_host_once() -> None:
    """The first park makes one (pinned) host copy per tensor; activation moves them back; the second park makes
    none and points the tensors at the same host copies; outputs are unchanged."""
    a, b = _shared_modules("cuda")
    x = torch.randn(5, 4, device="cuda")
    a.eval()
    ref = a(x).cpu()
    park = torchkit.HostParking()
    assert park.park(a, b) == 8 and park.copies == 8
    assert all(t.device.type == "cpu" and t.is_pinned() for t in park.tensors(a, b))
    host = [t.data for t in park.tensors(a, b)]
    assert park.activate("cuda", a) == 5 and b[1].weight.device.type == "cpu"
    torch.testing.assert_close(a(x).cpu(), ref)
    assert park.activate("cuda", b) == 1 and park.park(b, a) == 8 and park.copies == 8
    assert all(t.data is h for t, h in zip(park.tensors(a, b), host, strict=True))
