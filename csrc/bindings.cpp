// Python bindings of the native kernels. The CUDA entry points exist only in the CUDA variant
// of the extension (built with -DDIBR_WITH_CUDA).
#include <torch/csrc/utils/pybind.h>

#include <vector>

#include <ATen/ATen.h>

namespace dibr {
at::Tensor vis_forward_cpu(const at::Tensor&, const at::Tensor&, int64_t, int64_t);
std::vector<at::Tensor> soft_forward_cpu(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         int64_t, int64_t, double, double);
at::Tensor soft_backward_cpu(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                             const std::vector<at::Tensor>&, int64_t, int64_t, double, double,
                             bool);
#ifdef DIBR_WITH_CUDA
at::Tensor vis_forward_cuda(const at::Tensor&, const at::Tensor&, int64_t, int64_t);
std::vector<at::Tensor> soft_forward_cuda(const at::Tensor&, const at::Tensor&,
                                          const at::Tensor&, int64_t, int64_t, double, double);
at::Tensor soft_backward_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                              const std::vector<at::Tensor>&, int64_t, int64_t, double, double,
                              bool);
#endif
}  // namespace dibr

// The kernels touch no Python objects: release the GIL so a GUI thread keeps running while
// a fit thread is inside a kernel.
static const auto nogil = py::call_guard<py::gil_scoped_release>();

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "render_core native kernels: z-buffer visibility and the DIB-R soft silhouette";
  m.def("vis_forward_cpu", &dibr::vis_forward_cpu, "face_idx [B,H,W] of clip [B,V,4]", nogil);
  m.def("soft_forward_cpu", &dibr::soft_forward_cpu, "alpha and saved state", nogil);
  m.def("soft_backward_cpu", &dibr::soft_backward_cpu, "grad_xy [B,V,2]", nogil);
#ifdef DIBR_WITH_CUDA
  m.def("vis_forward_cuda", &dibr::vis_forward_cuda, "face_idx [B,H,W] of clip [B,V,4]", nogil);
  m.def("soft_forward_cuda", &dibr::soft_forward_cuda, "alpha and saved state", nogil);
  m.def("soft_backward_cuda", &dibr::soft_backward_cuda, "grad_xy [B,V,2]", nogil);
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
}
