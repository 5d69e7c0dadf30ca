// Counting sort: indices grouped by an integer key, ascending within each key. The backward
// passes use it to reduce per-pixel or per-corner contributions in a fixed order (pixels by
// face, corners by vertex) instead of scattering them with order-dependent adds.
//
// count (one index per item) -> exclusive scan -> fill (one index per item). The CPU driver
// runs both passes in index order (images with disjoint keys side by side, see group_serial),
// so the fill already writes each group in ascending index order;
// on the GPU the fill order depends on scheduling, so the bodies write composite keys
// key * n + index, which one sort (ATen, both devices) puts in order before they are decoded.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <limits>
#include <mutex>
#include <string.h>

#include "dibr_math.h"

namespace dibr {

struct GroupParams {
  const int64_t* key;  // [n] key of item i (before adding the image offset); < 0: left out
  int64_t n;           // number of items
  int64_t stride;      // items per image: item i belongs to image i / stride ...
  int64_t step;        // ... whose keys are offset by (i / stride) * step
  int* count;          // [nkeys] count pass: items per key (zeroed by the driver)
  int* cursor;         // [nkeys] fill pass: next free slot, starts at the key's offset
  int64_t* out;        // [total] fill pass: index i, or key * n + i when `composite`
  bool composite;      // write sortable composite keys (GPU) instead of plain indices
};

DIBR_HD int64_t group_key(int64_t i, const GroupParams& p) {
  const int64_t k = p.key[i];
  return k < 0 ? -1 : k + (i / p.stride) * p.step;
}

DIBR_HD void group_count_body(int64_t i, const GroupParams& p) {
  const int64_t k = group_key(i, p);
  if (k >= 0) atomic_fetch_inc(&p.count[k]);
}

DIBR_HD void group_fill_body(int64_t i, const GroupParams& p) {
  const int64_t k = group_key(i, p);
  if (k >= 0) p.out[atomic_fetch_inc(&p.cursor[k])] = p.composite ? k * p.n + i : i;
}

struct GroupCount {
  template <class P>
  static DIBR_HD void run(int64_t i, const P& p) { group_count_body(i, p); }
};
struct GroupFill {
  template <class P>
  static DIBR_HD void run(int64_t i, const P& p) { group_fill_body(i, p); }
};

// group_count_body (fill = false) or group_fill_body (fill = true) for the items of images
// [b0, b1) in index order, on the host, without a division per item.
inline void group_images(const GroupParams& p, bool fill, int64_t b0, int64_t b1) {
  for (int64_t i0 = b0 * p.stride, off = b0 * p.step; i0 < p.n && i0 < b1 * p.stride;
       i0 += p.stride, off += p.step) {
    const int64_t i1 = i0 + p.stride < p.n ? i0 + p.stride : p.n;
    const int64_t* key = p.key;
    if (fill) {
      for (int64_t i = i0; i < i1; ++i)
        if (key[i] >= 0) {
          const int64_t k = key[i] + off;
          p.out[p.cursor[k]++] = p.composite ? k * p.n + i : i;
        }
    } else {
      for (int64_t i = i0; i < i1; ++i)
        if (key[i] >= 0) ++p.count[key[i] + off];
    }
  }
}

// Every item (host). Images whose keys are offset by step > 0 have disjoint key ranges (keys
// are below step), so they are counted and filled in parallel: the same counts, and each key's
// items still in ascending order.
inline void group_serial(const GroupParams& p, bool fill) {
  const int64_t nimg = (p.n + p.stride - 1) / p.stride;
  if (p.step > 0 && nimg > 1) {
    at::parallel_for(0, nimg, 1, [&](int64_t b0, int64_t b1) { group_images(p, fill, b0, b1); });
  } else {
    group_images(p, fill, 0, nimg);
  }
}

struct Groups {
  at::Tensor off;    // [nkeys+1] int64: items of key k are items[off[k] .. off[k+1])
  at::Tensor items;  // [total] int64 item indices, grouped by key, ascending within a key
};

// Group the items of `key` (int64, any shape, flattened) by key + (i / stride) * step, for
// keys in [0, nkeys).
template <class Exec>
Groups group_by(const at::Tensor& key_in, int64_t nkeys, int64_t stride, int64_t step) {
  const at::Tensor key = key_in.to(at::kLong).contiguous().view({-1});
  const int64_t n = key.numel();
  TORCH_CHECK(n < std::numeric_limits<int>::max(), "render_core: too many items to group");
  auto iopt = key.options().dtype(at::kInt);
  at::Tensor count = at::zeros({nkeys}, iopt);
  GroupParams gp{key.data_ptr<int64_t>(), n, stride > 0 ? stride : 1, step,
                 count.data_ptr<int>(), nullptr, nullptr, Exec::kAtomicAdds};
  if constexpr (!Exec::kAtomicAdds) {
    // The host: the same serial passes, image by image instead of a division per item.
    group_serial(gp, false);
  } else {
    Exec::template launch_serial<GroupCount>(n, gp);
  }
  at::Tensor off = at::zeros({nkeys + 1}, key.options());
  off.slice(0, 1).copy_(count.cumsum(0));
  const int64_t total = nkeys ? off[nkeys].item<int64_t>() : 0;
  at::Tensor cursor = off.slice(0, 0, nkeys).to(at::kInt);
  at::Tensor items = at::empty({total}, key.options());
  gp.cursor = cursor.data_ptr<int>();
  gp.out = items.data_ptr<int64_t>();
  if constexpr (!Exec::kAtomicAdds) {
    group_serial(gp, true);
  } else {
    Exec::template launch_serial<GroupFill>(n, gp);
  }
  if (gp.composite && total) {
    items = std::get<0>(at::sort(items, /*stable=*/false, 0, false)).remainder(n);
  }
  return Groups{off, items};
}

// A one-entry memo of group_by for keys that repeat: a fit step groups the same face_idx by
// face in two backward passes (interpolation, then barycentrics) and the same faces by vertex in
// every step. An entry is reused only where the key holds the very same values as the kept copy
// of the last one (compared byte for byte: a memcmp is far cheaper than the grouping, and unlike
// a tensor's version counter it also sees writes through a shared numpy array), with the same
// shape and grouping; anything else groups again. Host only: the same Groups either way.
struct GroupMemo {
  std::mutex m;
  at::Tensor key;  // a copy of the last key's values
  int64_t nkeys = -1, stride = -1, step = -1;
  Groups g;
  void clear() {
    std::lock_guard<std::mutex> lk(m);
    key = at::Tensor();
    g = Groups{};
  }
};

template <class Exec>
Groups group_by_memo(GroupMemo& memo, const at::Tensor& key, int64_t nkeys, int64_t stride,
                     int64_t step) {
  if (Exec::kAtomicAdds || !key.is_contiguous() || key.scalar_type() != at::kLong)
    return group_by<Exec>(key, nkeys, stride, step);
  std::lock_guard<std::mutex> lk(memo.m);
  if (memo.key.defined() && memo.key.sizes() == key.sizes() && memo.nkeys == nkeys &&
      memo.stride == stride && memo.step == step &&
      memcmp(memo.key.data_ptr(), key.data_ptr(), key.numel() * sizeof(int64_t)) == 0)
    return memo.g;
  Groups g = group_by<Exec>(key, nkeys, stride, step);
  memo.key = key.clone();
  memo.nkeys = nkeys, memo.stride = stride, memo.step = step;
  memo.g = g;
  return g;
}

}  // namespace dibr
