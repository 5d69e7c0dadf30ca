// Python bindings of the native kernels. The CUDA entry points exist only in the CUDA variant
// of the extension (built with -DDIBR_WITH_CUDA).
#include <torch/csrc/utils/pybind.h>

#include <optional>
#include <vector>

#include <ATen/ATen.h>

namespace dibr {
at::Tensor vis_forward_cpu(const at::Tensor&, const at::Tensor&, int64_t, int64_t);
std::vector<at::Tensor> soft_forward_cpu(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         int64_t, int64_t, double, double);
std::vector<at::Tensor> soft_forward_pairs_cpu(const at::Tensor&, const at::Tensor&,
                                               const at::Tensor&, int64_t, int64_t, double,
                                               double);
std::vector<at::Tensor> soft_forward_covered_cpu(const at::Tensor&, const at::Tensor&,
                                                 const at::Tensor&, const at::Tensor&, int64_t,
                                                 int64_t, double, double, bool);
int64_t release_buffers_cpu();
at::Tensor soft_backward_cpu(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                             const std::vector<at::Tensor>&, int64_t, int64_t, double, double,
                             bool);
std::vector<at::Tensor> bary_forward_cpu(const at::Tensor&, const at::Tensor&, const at::Tensor&);
at::Tensor bary_backward_cpu(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                             const std::optional<at::Tensor>&, const std::optional<at::Tensor>&);
at::Tensor interp_forward_cpu(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                              const at::Tensor&);
std::vector<at::Tensor> interp_backward_cpu(const at::Tensor&, const at::Tensor&,
                                            const at::Tensor&, const at::Tensor&,
                                            const at::Tensor&);
std::vector<at::Tensor> image_loss_forward_cpu(const at::Tensor&, const at::Tensor&,
                                               const at::Tensor&, const at::Tensor&);
std::vector<at::Tensor> image_loss_backward_cpu(const at::Tensor&, const at::Tensor&,
                                                const at::Tensor&, const at::Tensor&,
                                                const at::Tensor&, const at::Tensor&,
                                                const at::Tensor&);
#ifdef DIBR_WITH_CUDA
std::vector<at::Tensor> image_loss_forward_cuda(const at::Tensor&, const at::Tensor&,
                                                const at::Tensor&, const at::Tensor&);
std::vector<at::Tensor> image_loss_backward_cuda(const at::Tensor&, const at::Tensor&,
                                                 const at::Tensor&, const at::Tensor&,
                                                 const at::Tensor&, const at::Tensor&,
                                                 const at::Tensor&);
std::vector<at::Tensor> bary_forward_cuda(const at::Tensor&, const at::Tensor&,
                                          const at::Tensor&);
at::Tensor bary_backward_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                              const std::optional<at::Tensor>&, const std::optional<at::Tensor>&,
                              bool);
at::Tensor interp_forward_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                               const at::Tensor&);
std::vector<at::Tensor> interp_backward_cuda(const at::Tensor&, const at::Tensor&,
                                             const at::Tensor&, const at::Tensor&,
                                             const at::Tensor&, bool);
at::Tensor vis_forward_cuda(const at::Tensor&, const at::Tensor&, int64_t, int64_t);
std::vector<at::Tensor> soft_forward_cuda(const at::Tensor&, const at::Tensor&,
                                          const at::Tensor&, int64_t, int64_t, double, double);
at::Tensor soft_backward_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                              const std::vector<at::Tensor>&, int64_t, int64_t, double, double,
                              bool);
#endif
at::Tensor aa_forward_cpu(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                          const at::Tensor&, const at::Tensor&, const at::Tensor&);
std::vector<at::Tensor> aa_backward_cpu(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                        const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                        const at::Tensor&);
#ifdef DIBR_WITH_CUDA
at::Tensor aa_forward_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                           const at::Tensor&, const at::Tensor&, const at::Tensor&);
std::vector<at::Tensor> aa_backward_cuda(const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&, bool);
#endif
at::Tensor nmr_backward_cpu(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                            const at::Tensor&, const at::Tensor&, const at::Tensor&,
                            const at::Tensor&);
#ifdef DIBR_WITH_CUDA
at::Tensor nmr_backward_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                             const at::Tensor&, const at::Tensor&, const at::Tensor&,
                             const at::Tensor&);
#endif
std::vector<at::Tensor> softras_forward_cpu(const at::Tensor&, const at::Tensor&,
                                            const at::Tensor&, const at::Tensor&,
                                            const at::Tensor&, const at::Tensor&, int64_t,
                                            int64_t, double, double, double, double);
std::vector<at::Tensor> softras_backward_cpu(const at::Tensor&, const at::Tensor&,
                                             const at::Tensor&, const at::Tensor&,
                                             const at::Tensor&, const at::Tensor&,
                                             const at::Tensor&, const at::Tensor&,
                                             const std::vector<at::Tensor>&, int64_t, int64_t,
                                             double, double, double, double);
#ifdef DIBR_WITH_CUDA
std::vector<at::Tensor> softras_forward_cuda(const at::Tensor&, const at::Tensor&,
                                             const at::Tensor&, const at::Tensor&,
                                             const at::Tensor&, const at::Tensor&, int64_t,
                                             int64_t, double, double, double, double);
std::vector<at::Tensor> softras_backward_cuda(const at::Tensor&, const at::Tensor&,
                                              const at::Tensor&, const at::Tensor&,
                                              const at::Tensor&, const at::Tensor&,
                                              const at::Tensor&, const at::Tensor&,
                                              const std::vector<at::Tensor>&, int64_t, int64_t,
                                              double, double, double, double, bool);
#endif
std::vector<at::Tensor> shade_forward_cpu(const at::Tensor&,
                                          const std::optional<at::Tensor>&, const at::Tensor&,
                                          const std::optional<at::Tensor>&,
                                          const std::optional<at::Tensor>&,
                                          const std::optional<at::Tensor>&,
                                          const std::vector<double>&, int64_t, double);
std::vector<at::Tensor> shade_backward_cpu(const at::Tensor&,
                                           const std::optional<at::Tensor>&, const at::Tensor&,
                                           const std::optional<at::Tensor>&,
                                           const std::optional<at::Tensor>&,
                                           const std::optional<at::Tensor>&,
                                           const std::vector<double>&, int64_t, double,
                                           const std::vector<at::Tensor>&, const at::Tensor&,
                                           bool);
std::vector<at::Tensor> vertex_normals_forward_cpu(const at::Tensor&, const at::Tensor&,
                                                   double);
at::Tensor vertex_normals_backward_cpu(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                       const at::Tensor&, double);
std::vector<at::Tensor> mesh_reg_forward_cpu(const at::Tensor&, const at::Tensor&,
                                             const at::Tensor&, const at::Tensor&,
                                             const at::Tensor&, int64_t, int64_t, double);
at::Tensor mesh_reg_backward_cpu(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                 const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                                 const at::Tensor&, double, double, double);
}  // namespace dibr

// The kernels touch no Python objects: release the GIL so a GUI thread keeps running while
// a fit thread is inside a kernel.
static const auto nogil = py::call_guard<py::gil_scoped_release>();

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "render_core native kernels: visibility, fragments, interpolation, soft silhouette";
  m.def("vis_forward_cpu", &dibr::vis_forward_cpu, "face_idx [B,H,W] of clip [B,V,4]", nogil);
  m.def("soft_forward_cpu", &dibr::soft_forward_cpu, "alpha and saved state", nogil);
  m.def("soft_forward_pairs_cpu", &dibr::soft_forward_pairs_cpu,
        "alpha and saved state with the pixel-face pairs", nogil);
  m.def("soft_forward_covered_cpu", &dibr::soft_forward_covered_cpu,
        "either forward, with the coverage given", nogil);
  m.def("soft_backward_cpu", &dibr::soft_backward_cpu, "grad_xy [B,V,2]", nogil);
  m.def("release_buffers_cpu", &dibr::release_buffers_cpu,
        "free the kept soft-silhouette pair buffers; the bytes they spanned", nogil);
  m.def("bary_forward_cpu", &dibr::bary_forward_cpu, "bary, depth of each pixel's face", nogil);
  m.def("bary_backward_cpu", &dibr::bary_backward_cpu, "grad_clip [B,V,4]", nogil);
  m.def("interp_forward_cpu", &dibr::interp_forward_cpu, "interpolated [B,H,W,C]", nogil);
  m.def("interp_backward_cpu", &dibr::interp_backward_cpu, "grad_attr, grad_bary", nogil);
  m.def("image_loss_forward_cpu", &dibr::image_loss_forward_cpu,
        "[iou, l1, (inter, union) per image], the sRGB render", nogil);
  m.def("image_loss_backward_cpu", &dibr::image_loss_backward_cpu, "grad_rgb, grad_alpha",
        nogil);
  m.def("aa_forward_cpu", &dibr::aa_forward_cpu, "antialiased color [B,H,W,C]", nogil);
  m.def("aa_backward_cpu", &dibr::aa_backward_cpu, "grad_color, grad_clip", nogil);
  m.def("nmr_backward_cpu", &dibr::nmr_backward_cpu, "NMR grad_xy [B,F,3,2]", nogil);
  m.def("softras_forward_cpu", &dibr::softras_forward_cpu, "rgb, alpha and saved state", nogil);
  m.def("softras_backward_cpu", &dibr::softras_backward_cpu, "grad_xy, grad_zn, grad_color",
        nogil);
  m.def("shade_forward_cpu", &dibr::shade_forward_cpu, "lit colour [P,3] of covered pixels, saved state",
        nogil);
  m.def("shade_backward_cpu", &dibr::shade_backward_cpu,
        "grad_attrs, grad_dir, grad_intensity, grad_ambient, grad_kd", nogil);
  m.def("vertex_normals_forward_cpu", &dibr::vertex_normals_forward_cpu,
        "area-weighted vertex normals and their unnormalised sums", nogil);
  m.def("vertex_normals_backward_cpu", &dibr::vertex_normals_backward_cpu, "grad_vertices",
        nogil);
  m.def("mesh_reg_forward_cpu", &dibr::mesh_reg_forward_cpu,
        "laplacian, normal consistency, edge length, saved state", nogil);
  m.def("mesh_reg_backward_cpu", &dibr::mesh_reg_backward_cpu, "grad_vertices", nogil);
#ifdef DIBR_WITH_CUDA
  m.def("image_loss_forward_cuda", &dibr::image_loss_forward_cuda,
        "[iou, l1, (inter, union) per image], the sRGB render", nogil);
  m.def("image_loss_backward_cuda", &dibr::image_loss_backward_cuda, "grad_rgb, grad_alpha",
        nogil);
  m.def("aa_forward_cuda", &dibr::aa_forward_cuda, "antialiased color [B,H,W,C]", nogil);
  m.def("aa_backward_cuda", &dibr::aa_backward_cuda, "grad_color, grad_clip", nogil);
  m.def("nmr_backward_cuda", &dibr::nmr_backward_cuda, "NMR grad_xy [B,F,3,2]", nogil);
  m.def("softras_forward_cuda", &dibr::softras_forward_cuda, "rgb, alpha and saved state",
        nogil);
  m.def("softras_backward_cuda", &dibr::softras_backward_cuda, "grad_xy, grad_zn, grad_color",
        nogil);
  m.def("bary_forward_cuda", &dibr::bary_forward_cuda, "bary, depth of each pixel's face",
        nogil);
  m.def("bary_backward_cuda", &dibr::bary_backward_cuda, "grad_clip [B,V,4]", nogil);
  m.def("interp_forward_cuda", &dibr::interp_forward_cuda, "interpolated [B,H,W,C]", nogil);
  m.def("interp_backward_cuda", &dibr::interp_backward_cuda, "grad_attr, grad_bary", nogil);
  m.def("vis_forward_cuda", &dibr::vis_forward_cuda, "face_idx [B,H,W] of clip [B,V,4]", nogil);
  m.def("soft_forward_cuda", &dibr::soft_forward_cuda, "alpha and saved state", nogil);
  m.def("soft_backward_cuda", &dibr::soft_backward_cuda, "grad_xy [B,V,2]", nogil);
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
}
